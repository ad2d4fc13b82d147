import GridMonWire

/// Where the agent keeps its samples until the server acknowledges them: in memory
/// (`MemorySampleQueue`) or in a directory that survives restarts (`DiskSampleQueue`).
///
/// Oldest first, bounded; what a bound drops is counted in `dropped`. Threading: owned by
/// the agent's loop.
public protocol SampleQueue: AnyObject {
    /// Samples held and not acknowledged.
    var count: Int { get }
    /// Samples dropped by the queue's bounds, since it was created (a disk queue counts
    /// across restarts).
    var dropped: UInt64 { get }
    /// Whether the held samples already follow the server's numbering. A fresh queue's do
    /// not: its first Welcome says where the server's numbering for this node stands.
    var numbered: Bool { get }
    /// The highest seq ever held, so a restarted agent numbers on after it (0: none).
    var lastSeq: UInt64 { get }
    func append(_ sample: Sample)
    /// Forgets every sample with seq ≤ `durableSeq`.
    func acknowledge(_ durableSeq: UInt64)
    /// Up to `max` samples not yet sent on this connection, oldest first; marks them sent.
    func takeUnsent(max: Int) -> [Sample]
    /// A new connection: everything held is unsent again.
    func resendAll()
    /// Numbers every held sample on from `durableSeq` and marks the queue numbered. Returns
    /// the last seq given (`durableSeq` when empty), or nil when `durableSeq` leaves no room
    /// below `SampleBuffer.maxSeq` (nothing changes then).
    func renumber(after durableSeq: UInt64) -> UInt64?
    /// Makes what was appended and acknowledged so far durable (a no-op in memory).
    func sync()
}

/// The in-memory queue: a `SampleBuffer`. Lost when the agent stops.
public final class MemorySampleQueue: SampleQueue {
    private var buffer: SampleBuffer
    public private(set) var numbered = false
    public private(set) var lastSeq: UInt64 = 0

    public init(capacity: Int, maxBytes: Int) { buffer = SampleBuffer(capacity: capacity, maxBytes: maxBytes) }

    public var count: Int { buffer.count }
    public var dropped: UInt64 { buffer.dropped }
    public func append(_ sample: Sample) {
        buffer.append(sample)
        lastSeq = max(lastSeq, sample.seq)
    }
    public func acknowledge(_ durableSeq: UInt64) { buffer.acknowledge(durableSeq) }
    public func takeUnsent(max: Int) -> [Sample] { buffer.takeUnsent(max: max) }
    public func resendAll() { buffer.resendAll() }
    public func renumber(after durableSeq: UInt64) -> UInt64? {
        guard let last = buffer.isEmpty ? (durableSeq < SampleBuffer.maxSeq ? durableSeq : nil) : buffer.renumber(after: durableSeq)
        else { return nil }
        numbered = true
        lastSeq = last
        return last
    }
    public func sync() {}
}
