/// One tenant's delivery to its database or bucket: the outbox records waiting, the batches
/// being sent and how they are being split, the backoff after failures, and which records are
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
    /// Its `first` record names it.
    struct Delivery {
        var first: UInt64
        var last: UInt64
        var body: [UInt8]
        var lineCount: Int
        /// Byte offset where each line starts, plus the end; computed on the first split.
        var lineStarts: [Int] = []
        var pieces: [Range<Int>]
        /// Its top piece is in flight.
        var sending = false
        /// Outbox records it holds.
        var records = 0
        var isDone: Bool { pieces.isEmpty }
    }

    let tenant: String
    private var queue: [Record] = []
    private var head = 0
    private(set) var queuedBytes = 0
    private(set) var queuedLines = 0
    /// Records of this tenant from here on (below the shared reader) are not in memory.
    private(set) var skippedFrom: UInt64?
    private(set) var deliveredThrough: UInt64
    /// Batches in delivery, oldest first (at most the concurrency asked for); a finished one
    /// waits here until those before it finish, so `deliveredThrough` only moves over
    /// records that are all delivered.
    private(set) var deliveries: [Delivery] = []
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
    /// Records taken and not yet delivered: queued, or in a batch being sent.
    var pendingRecords: Int { queuedRecords + deliveries.reduce(0) { $0 + ($1.isDone ? 0 : $1.records) } }
    var inFlight: Int { deliveries.filter(\.sending).count }

    /// The oldest record of this lane not yet delivered (nil: nothing pending).
    var oldestUndelivered: UInt64? {
        [deliveries.first?.first, head < queue.count ? queue[head].number : nil, skippedFrom].compactMap { $0 }.min()
    }

    /// Whether the shipper should read the outbox again for this lane now.
    func wantsCatchUp(nowNs: UInt64) -> Bool {
        skippedFrom != nil && head == queue.count && deliveries.isEmpty && nowNs >= notBeforeNs
    }

    /// Takes record `number` from the shared reader. Queued unless already delivered (before a
    /// restart), or the lane is behind or failing with `failingBytes` held: then it is skipped,
    /// to be read again in catch-up. Returns false when skipped.
    @discardableResult
    mutating func offer(_ record: Record, failingBytes: Int) -> Bool {
        offer(record.number, failingBytes: failingBytes) { record }
    }

    /// `offer`, with the record made only when it is queued: making one formats its samples
    /// as line protocol, wasted on a record skipped or already delivered.
    @discardableResult
    mutating func offer(_ number: UInt64, failingBytes: Int, making record: () -> Record) -> Bool {
        if number <= deliveredThrough { return true }
        if skippedFrom != nil { return false }
        if isFailing && queuedBytes >= failingBytes {
            skippedFrom = number
            return false
        }
        append(record())
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

    /// The next request to send now, if any, named by its delivery: a piece of a batch in
    /// delivery (oldest first), or a new batch when fewer than `concurrency` are in delivery
    /// and `batchLines` lines are waiting or the interval since the last post has passed.
    /// While failing, one request at a time probes the target and no batch is opened.
    mutating func nextRequest(nowNs: UInt64, batchLines: Int, concurrency: Int = 1) -> (delivery: UInt64, body: [UInt8])? {
        guard nowNs >= notBeforeNs else { return nil }
        if let index = deliveries.firstIndex(where: { !$0.sending && !$0.isDone }) {
            if isFailing && inFlight > 0 { return nil }
            deliveries[index].sending = true
            return (deliveries[index].first, pieceBody(deliveries[index]))
        }
        // Finished batches waiting for an older one hold no body; they are bounded all the same.
        guard !isFailing, deliveries.count - deliveries.count(where: \.isDone) < concurrency, deliveries.count < 16 * concurrency,
              head < queue.count,
              queuedLines >= batchLines || nowNs &- lastPostNs >= intervalNs else { return nil }
        // The batch's records first (whole records, up to `batchLines` lines, at least one),
        // then its body, sized once rather than regrown record by record.
        var end = head
        var lines = 0
        var size = 0
        while end < queue.count && (lines == 0 || lines + queue[end].lineCount <= batchLines) {
            lines += queue[end].lineCount
            size += queue[end].lines.count
            end += 1
        }
        var body: [UInt8] = []
        body.reserveCapacity(size)
        let first = queue[head].number
        let last = queue[end - 1].number
        let records = end - head
        for index in head..<end {
            body += queue[index].lines
            queue[index].lines = []
        }
        head = end
        queuedBytes -= size
        queuedLines -= lines
        guard lines > 0 else {
            // Records without lines (every line left out as unrepresentable) are delivered as
            // they are: an empty POST would be split for ever if a target refused it.
            deliveries.append(Delivery(first: first, last: last, body: [], lineCount: 0, pieces: []))
            finishDone()
            return nextRequest(nowNs: nowNs, batchLines: batchLines, concurrency: concurrency)
        }
        deliveries.append(Delivery(first: first, last: last, body: body, lineCount: lines, pieces: [0..<lines], sending: true, records: records))
        lastPostNs = nowNs
        return (first, body)
    }

    /// The bytes of the piece on top of `delivery`'s stack.
    private func pieceBody(_ delivery: Delivery) -> [UInt8] {
        guard let piece = delivery.pieces.last else { return [] }
        if piece.count == delivery.lineCount { return delivery.body }
        return Array(delivery.body[delivery.lineStarts[piece.lowerBound]..<delivery.lineStarts[piece.upperBound]])
    }

    /// The piece sent for `delivery` was written. Returns its line count.
    mutating func pieceWritten(_ delivery: UInt64) -> Int {
        recovered()
        guard let index = sent(delivery), let piece = deliveries[index].pieces.popLast() else { return 0 }
        if deliveries[index].isDone { deliveries[index].body = [] }
        finishDone()
        return piece.count
    }

    /// The body of `delivery`'s piece in flight when it is a single line (what a refusal would
    /// dead-letter), else nil.
    func loneLine(_ delivery: UInt64) -> [UInt8]? {
        guard let current = deliveries.first(where: { $0.first == delivery }), current.pieces.last?.count == 1 else { return nil }
        return pieceBody(current)
    }

    /// The piece sent for `delivery` was refused as bad data (400/422, or 413 too large). A
    /// single line is given back to be dead-lettered; a longer piece is halved and its halves
    /// sent next.
    mutating func pieceRejected(_ delivery: UInt64) -> [UInt8]? {
        recovered()
        guard let index = sent(delivery), let piece = deliveries[index].pieces.last else { return nil }
        if piece.count == 1 {
            let body = pieceBody(deliveries[index])
            deliveries[index].pieces.removeLast()
            if deliveries[index].isDone { deliveries[index].body = [] }
            finishDone()
            return body
        }
        var current = deliveries[index]
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
        deliveries[index] = current
        return nil
    }

    /// The request of `delivery` failed, or was refused for reasons other than its data; it
    /// is sent again after `delaySeconds` (Retry-After), else after capped exponential backoff
    /// with full jitter (`jitter` in 0..<1): 0.2 s doubling to 30 s. Past `failingBytes`
    /// queued, the newest records are let go (they stay in the outbox; catch-up reads them
    /// again). Returns the delay chosen, in seconds.
    @discardableResult
    mutating func failed(_ delivery: UInt64, nowNs: UInt64, delaySeconds: Double? = nil, jitter: Double, failingBytes: Int) -> Double {
        _ = sent(delivery)
        failuresInARow += 1
        let cap = min(30.0, 0.2 * Double(1 << min(failuresInARow, 8)))
        let delay = delaySeconds ?? cap * (0.5 + 0.5 * jitter)
        notBeforeNs = max(notBeforeNs, nowNs + UInt64(delay * 1e9))
        while queuedBytes > failingBytes && head < queue.count {
            let dropped = queue.removeLast()
            queuedBytes -= dropped.lines.count
            queuedLines -= dropped.lineCount
            skippedFrom = dropped.number
        }
        return delay
    }

    /// Send `delivery`'s piece again at once (the missing database was just created).
    mutating func retryNow(_ delivery: UInt64) { _ = sent(delivery) }

    /// The target answers again (the shipper's probe): the backoff's wait is cut short, so the
    /// next request goes now rather than up to 30 s later (issue #18, item 5). The failure
    /// count stays until a write succeeds, so a target that answers /ping but still refuses
    /// writes keeps backing off.
    mutating func resume(nowNs: UInt64) { notBeforeNs = min(notBeforeNs, nowNs) }

    /// Marks `delivery`'s request as answered; its index.
    private mutating func sent(_ delivery: UInt64) -> Int? {
        guard let index = deliveries.firstIndex(where: { $0.first == delivery }) else { return nil }
        deliveries[index].sending = false
        return index
    }

    private mutating func recovered() { failuresInARow = 0 }

    /// Retires the finished deliveries at the front.
    private mutating func finishDone() {
        while let done = deliveries.first, done.isDone {
            deliveredThrough = max(deliveredThrough, done.last)
            deliveries.removeFirst()
        }
    }
}
