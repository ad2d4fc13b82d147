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
    /// Samples accepted but not yet written: the queue between the server and the store.
    var queuedSamples: Int { get }
    /// At or above this many queued samples the server stops reading from agents
    /// (backpressure: agents buffer on their side); it resumes below `lowWater`.
    var highWater: Int { get }
    var lowWater: Int { get }
}

/// Keeps nothing; counts what passed. The stand-in until the durable outbox lands.
public final class CountingSink: SampleSink {
    private let counter = Atomic<UInt64>(0)
    public init() {}
    public var count: UInt64 { counter.value }
    public var isReady: Bool { true }
    public var queuedSamples: Int { 0 }
    public var highWater: Int { Int.max }
    public var lowWater: Int { Int.max }
    public func append(_ samples: [ScoredSample]) { counter.add(UInt64(samples.count)) }
}
