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
/// Threading: called on the reactor thread; implementations hand work to their own thread.
public protocol SampleSink: AnyObject {
    func append(_ samples: [ScoredSample])
    /// False while the sink cannot write (reported by `/readyz`).
    var isReady: Bool { get }
}

/// Keeps nothing; counts what passed. The stand-in until the durable outbox lands.
public final class CountingSink: SampleSink {
    public private(set) var count = 0
    public private(set) var last: ScoredSample?
    public init() {}
    public var isReady: Bool { true }
    public func append(_ samples: [ScoredSample]) {
        count += samples.count
        if let final = samples.last { last = final }
    }
}
