import GridMonWire

/// The agent's samples not yet acknowledged by the server, oldest first, bounded.
///
/// While the server is away the agent keeps collecting; past `capacity` samples or about
/// `maxBytes` bytes (`approximateBytes`) the oldest samples are dropped and counted
/// (`dropped`), so memory stays bounded and the newest data survives.
/// An `Ack` removes everything at or below its durable seq; after a reconnect, everything
/// still here is sent again. Pure value type; owned by the agent's loop.
public struct SampleBuffer: Sendable {
    public let capacity: Int
    public let maxBytes: Int
    private var items: [Sample] = []
    /// `approximateBytes` of the live items.
    public private(set) var bytes = 0
    private var head = 0
    /// Samples discarded because the buffer was full.
    public private(set) var dropped: UInt64 = 0
    /// Index (into the live items) of the first sample not yet sent on this connection.
    private var unsentOffset = 0

    public init(capacity: Int, maxBytes: Int = .max) {
        precondition(capacity > 0)
        self.capacity = capacity
        self.maxBytes = maxBytes
    }

    /// What a sample costs in memory, roughly: the struct, and per extra gauge its entry and
    /// name (names of up to 15 bytes live inline in a Swift String).
    public static func approximateBytes(_ sample: Sample) -> Int {
        96 + sample.extra.reduce(0) { $0 + 24 + ($1.name.utf8.count > 15 ? 32 + $1.name.utf8.count : 0) }
    }

    public var count: Int { items.count - head }
    public var isEmpty: Bool { count == 0 }
    public var oldestSeq: UInt64? { isEmpty ? nil : items[head].seq }
    public var newestSeq: UInt64? { isEmpty ? nil : items[items.count - 1].seq }

    public mutating func append(_ sample: Sample) {
        let size = Self.approximateBytes(sample)
        while count > 0 && (count == capacity || bytes + size > maxBytes) {
            bytes -= Self.approximateBytes(items[head])
            head += 1
            dropped += 1
            unsentOffset = max(0, unsentOffset - 1)
        }
        items.append(sample)
        bytes += size
        compact()
    }

    /// Drops every sample with seq ≤ `durableSeq`.
    public mutating func acknowledge(_ durableSeq: UInt64) {
        var removed = 0
        while head < items.count && items[head].seq <= durableSeq {
            bytes -= Self.approximateBytes(items[head])
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
        return Array(items[start..<end])
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
            items[i].seq = seq
        }
        return seq
    }

    private mutating func compact() {
        if head > 1024 && head * 2 > items.count {
            items.removeFirst(head)
            head = 0
        }
    }
}
