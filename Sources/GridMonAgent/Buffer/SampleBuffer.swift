import GridMonWire

/// The agent's samples not yet acknowledged by the server, oldest first, bounded: the
/// in-memory queue (without `--buffer-dir`).
///
/// Samples are held encoded (`SampleRecord`, the wire's protobuf), so `bytes` is what the
/// buffer holds and not a guess: as Swift values, 72-gauge samples cost about twice their
/// estimate and a "64 MiB" buffer held 70 MiB. Past `capacity` samples or `maxBytes` bytes
/// the oldest samples are dropped and counted (`dropped`), so memory stays bounded and the
/// newest data survives. An `Ack` removes everything at or below its durable seq; after a
/// reconnect, everything still here is sent again. Value type, no syscalls; owned by the
/// agent's loop (it holds an encoder, so it is not shared between threads).
public struct SampleBuffer {
    /// Bytes a held record costs beyond its own: the array's header and the allocator's.
    public static let perRecordOverhead = 48

    private struct Held {
        var seq: UInt64
        var record: [UInt8]
        var cost: Int { record.count + SampleBuffer.perRecordOverhead }
    }

    public let capacity: Int
    public let maxBytes: Int
    private var items: [Held] = []
    /// Bytes held: every live record and its overhead.
    public private(set) var bytes = 0
    private var head = 0
    /// Samples discarded because the buffer was full.
    public private(set) var dropped: UInt64 = 0
    /// Index (into the live items) of the first sample not yet sent on this connection.
    private var unsentOffset = 0
    private let encoder = MessageEncoder()

    public init(capacity: Int, maxBytes: Int = .max) {
        precondition(capacity > 0)
        self.capacity = capacity
        self.maxBytes = maxBytes
    }

    /// What `sample` costs held here.
    public func cost(of sample: Sample) -> Int {
        SampleRecord.encode(sample, encoder: encoder).count + Self.perRecordOverhead
    }

    public var count: Int { items.count - head }
    public var isEmpty: Bool { count == 0 }
    public var oldestSeq: UInt64? { isEmpty ? nil : items[head].seq }
    public var newestSeq: UInt64? { isEmpty ? nil : items[items.count - 1].seq }

    public mutating func append(_ sample: Sample) {
        let held = Held(seq: sample.seq, record: SampleRecord.encode(sample, encoder: encoder))
        while count > 0 && (count == capacity || bytes + held.cost > maxBytes) {
            bytes -= items[head].cost
            items[head].record = []
            head += 1
            dropped += 1
            unsentOffset = max(0, unsentOffset - 1)
        }
        items.append(held)
        bytes += held.cost
        compact()
    }

    /// Drops every sample with seq ≤ `durableSeq`.
    public mutating func acknowledge(_ durableSeq: UInt64) {
        var removed = 0
        while head < items.count && items[head].seq <= durableSeq {
            bytes -= items[head].cost
            items[head].record = []
            head += 1
            removed += 1
        }
        unsentOffset = max(0, unsentOffset - removed)
        compact()
    }

    /// Up to `max` samples not yet sent on this connection; marks them sent.
    public mutating func takeUnsent(max: Int) -> [Sample] {
        let start = head + unsentOffset
        let end = min(items.count, start + max)
        guard start < end else { return [] }
        unsentOffset += end - start
        return items[start..<end].compactMap { Self.decode($0.record) }
    }

    /// A new connection: everything still here is unsent again.
    public mutating func resendAll() { unsentOffset = 0 }

    /// Highest seq an agent numbers up to: a server's `durable_seq` past it is refused rather
    /// than continued (a poisoned node once made the agent trap on overflow and crash-loop:
    /// issue #10, defect 3). 2^63 leaves room for any real numbering.
    public static let maxSeq: UInt64 = 1 << 63

    /// Renumbers every buffered sample to follow `durableSeq` (a fresh agent learns from its
    /// first Welcome where the server's numbering for this node stands). Returns the last seq
    /// given, or nil (and changes nothing) when `durableSeq` leaves no room below `maxSeq`.
    public mutating func renumber(after durableSeq: UInt64) -> UInt64? {
        guard durableSeq < Self.maxSeq - UInt64(count) - 1 else { return nil }
        var seq = durableSeq
        for i in head..<items.count {
            seq += 1
            guard var sample = Self.decode(items[i].record) else { continue }
            sample.seq = seq
            bytes -= items[i].cost
            items[i] = Held(seq: seq, record: SampleRecord.encode(sample, encoder: encoder))
            bytes += items[i].cost
        }
        return seq
    }

    /// A record this buffer wrote; nil never happens short of memory corruption.
    private static func decode(_ record: [UInt8]) -> Sample? {
        record.withUnsafeBytes { raw in
            if case .record(let sample, _) = SampleRecord.decode(raw) { return sample }
            return nil
        }
    }

    private mutating func compact() {
        if head > 1024 && head * 2 > items.count {
            items.removeFirst(head)
            head = 0
        }
    }
}
