import Synchronization
import GridMonWire

/// One accepted sample, scored, on its way to storage.
public struct ScoredSample: Sendable, Equatable {
    public var node: String
    public var tenant: String
    public var labels: [Label]
    public var sample: Sample
    public var score: Double
    public var anomalous: Bool
}

/// Where accepted samples go. The server acks a sample once `append` returned for it.
///
/// Threading: called from every reactor thread at once; implementations must be thread-safe
/// and must not block (hand work to a thread of their own).
public protocol SampleSink: AnyObject, Sendable {
    func append(_ samples: [ScoredSample])
    /// False while the sink cannot write (reported by `/readyz`).
    var isReady: Bool { get }
}

/// Keeps nothing; counts what passed. The stand-in until the durable outbox lands.
public final class CountingSink: SampleSink {
    private let counter = Atomic<UInt64>(0)
    public init() {}
    public var count: UInt64 { counter.value }
    public var isReady: Bool { true }
    public func append(_ samples: [ScoredSample]) { counter.add(UInt64(samples.count)) }
}
