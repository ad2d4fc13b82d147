/// One tenant's delivery to its database or bucket: the outbox records waiting, the batch
/// being sent and how it is being split, the backoff after failures, and which records are
/// delivered.
///
/// The shipper keeps one lane per tenant so that one tenant's failing target (a 404, a 401)
/// never holds up the others (#5). A failing lane keeps at most `failingBytes` in memory and
/// remembers where it stopped (`skippedFrom`); once it recovers, the shipper reads the outbox
/// again from there for it ("catch-up") until it rejoins the shared reader.
///
/// Pure state: the shipper does the I/O and passes the time and the jitter in.
/// Invariants: queued records are in increasing order and all below `skippedFrom`; every
/// record of this tenant at or below `deliveredThrough` is in InfluxDB or dead-lettered.
struct ShipperLane {
    struct Record: Equatable {
        var number: UInt64
        var lines: [UInt8]
        var lineCount: Int
    }

    /// A batch being delivered: the records it came from, its body, and the pieces of it still
    /// to send (line ranges, a stack: a rejected piece is halved until bad lines stand alone).
    struct Delivery {
        var first: UInt64
        var last: UInt64
        var body: [UInt8]
        var lineCount: Int
        /// Byte offset where each line starts, plus the end; computed on the first split.
        var lineStarts: [Int] = []
        var pieces: [Range<Int>]
    }

    let tenant: String
    private var queue: [Record] = []
    private var head = 0
    private(set) var queuedBytes = 0
    private(set) var queuedLines = 0
    /// Records of this tenant from here on (below the shared reader) are not in memory.
    private(set) var skippedFrom: UInt64?
    private(set) var deliveredThrough: UInt64
    private(set) var delivery: Delivery?
    /// A request of this lane is in flight.
    private(set) var sending = false
    private(set) var failuresInARow = 0
    private(set) var notBeforeNs: UInt64 = 0
    private var lastPostNs: UInt64 = 0
    /// The current batch interval (jittered by the shipper after each post).
    var intervalNs: UInt64

    init(tenant: String, deliveredThrough: UInt64 = 0, intervalNs: UInt64) {
        self.tenant = tenant
        self.deliveredThrough = deliveredThrough
        self.intervalNs = intervalNs
    }

    var isFailing: Bool { failuresInARow > 0 }
    var queuedRecords: Int { queue.count - head }

    /// The oldest record of this lane not yet delivered (nil: nothing pending).
    var oldestUndelivered: UInt64? {
        [delivery?.first, head < queue.count ? queue[head].number : nil, skippedFrom].compactMap { $0 }.min()
    }

    /// Whether the shipper should read the outbox again for this lane now.
    func wantsCatchUp(nowNs: UInt64) -> Bool {
        skippedFrom != nil && head == queue.count && delivery == nil && nowNs >= notBeforeNs
    }

    /// Takes record `number` from the shared reader. Queued unless already delivered (before a
    /// restart), or the lane is behind or failing with `failingBytes` held: then it is skipped,
    /// to be read again in catch-up. Returns false when skipped.
    @discardableResult
    mutating func offer(_ record: Record, failingBytes: Int) -> Bool {
        if record.number <= deliveredThrough { return true }
        if skippedFrom != nil { return false }
        if isFailing && queuedBytes >= failingBytes {
            skippedFrom = record.number
            return false
        }
        append(record)
        return true
    }

    /// Takes what a catch-up read found: `records` (this tenant's, in order) out of the
    /// records up to `readThrough`; `sharedNext` is the shared reader's next record, where
    /// catch-up ends and the lane rejoins it.
    mutating func caughtUp(_ records: [Record], readThrough: UInt64, sharedNext: UInt64) {
        for record in records where record.number > deliveredThrough && record.number < sharedNext { append(record) }
        skippedFrom = readThrough + 1 >= sharedNext ? nil : readThrough + 1
    }

    private mutating func append(_ record: Record) {
        if head > 64 && head * 2 > queue.count {
            queue.removeFirst(head)
            head = 0
        }
        queue.append(record)
        queuedBytes += record.lines.count
        queuedLines += record.lineCount
    }

    /// The body to send now, if any: the next piece of the batch in delivery, or a new batch
    /// when `batchLines` lines are waiting or the interval since the last post has passed.
    mutating func nextRequest(nowNs: UInt64, batchLines: Int) -> [UInt8]? {
        guard !sending, nowNs >= notBeforeNs else { return nil }
        if delivery == nil {
            guard head < queue.count, queuedLines >= batchLines || nowNs &- lastPostNs >= intervalNs else { return nil }
            var body: [UInt8] = []
            var lines = 0
            let first = queue[head].number
            var last = first
            while head < queue.count && (lines == 0 || lines + queue[head].lineCount <= batchLines) {
                let record = queue[head]
                body += record.lines
                lines += record.lineCount
                last = record.number
                queuedBytes -= record.lines.count
                queuedLines -= record.lineCount
                queue[head].lines = []
                head += 1
            }
            delivery = Delivery(first: first, last: last, body: body, lineCount: lines, pieces: [0..<lines])
            lastPostNs = nowNs
        }
        sending = true
        return pieceBody()
    }

    /// The bytes of the piece on top of the stack.
    private func pieceBody() -> [UInt8] {
        guard let delivery, let piece = delivery.pieces.last else { return [] }
        if piece.count == delivery.lineCount { return delivery.body }
        return Array(delivery.body[delivery.lineStarts[piece.lowerBound]..<delivery.lineStarts[piece.upperBound]])
    }

    /// The piece sent was written. Returns its line count.
    mutating func pieceWritten() -> Int {
        recovered()
        guard let piece = delivery?.pieces.popLast() else { return 0 }
        finishIfDone()
        return piece.count
    }

    /// The piece sent was refused as bad data (400/422, or 413 too large). A single line is
    /// given back to be dead-lettered; a longer piece is halved and its halves sent next.
    mutating func pieceRejected() -> [UInt8]? {
        recovered()
        guard var current = delivery, let piece = current.pieces.last else { return nil }
        if piece.count == 1 {
            let body = pieceBody()
            delivery!.pieces.removeLast()
            finishIfDone()
            return body
        }
        if current.lineStarts.isEmpty {
            current.lineStarts = [0]
            for (offset, byte) in current.body.enumerated() where byte == UInt8(ascii: "\n") { current.lineStarts.append(offset + 1) }
            if current.lineStarts.last != current.body.count { current.lineStarts.append(current.body.count) }
            // A record's line count and its newlines disagree only if the outbox format is
            // broken; then send the lines as counted here.
            current.lineCount = current.lineStarts.count - 1
            if piece.upperBound > current.lineCount { current.pieces = [0..<current.lineCount] }
        }
        let top = current.pieces.removeLast()
        let middle = top.lowerBound + top.count / 2
        current.pieces += [middle..<top.upperBound, top.lowerBound..<middle]
        delivery = current
        return nil
    }

    /// The request failed or was refused for reasons other than its data; it is sent again
    /// after `delaySeconds` (Retry-After), else after capped exponential backoff with full
    /// jitter (`jitter` in 0..<1): 0.2 s doubling to 30 s. Past `failingBytes` queued, the
    /// newest records are let go (they stay in the outbox; catch-up reads them again).
    /// Returns the delay chosen, in seconds.
    @discardableResult
    mutating func failed(nowNs: UInt64, delaySeconds: Double? = nil, jitter: Double, failingBytes: Int) -> Double {
        sending = false
        failuresInARow += 1
        let cap = min(30.0, 0.2 * Double(1 << min(failuresInARow, 8)))
        let delay = delaySeconds ?? cap * (0.5 + 0.5 * jitter)
        notBeforeNs = nowNs + UInt64(delay * 1e9)
        while queuedBytes > failingBytes && head < queue.count {
            let dropped = queue.removeLast()
            queuedBytes -= dropped.lines.count
            queuedLines -= dropped.lineCount
            skippedFrom = dropped.number
        }
        return delay
    }

    /// Send the same piece again at once (the missing database was just created).
    mutating func retryNow() { sending = false }

    private mutating func recovered() {
        sending = false
        failuresInARow = 0
    }

    private mutating func finishIfDone() {
        guard let done = delivery, done.pieces.isEmpty else { return }
        deliveredThrough = max(deliveredThrough, done.last)
        delivery = nil
    }
}
