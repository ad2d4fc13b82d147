import Synchronization
import GridMonCore
import GridMonStore
import GridMonDetect
import GridMonWire

/// One accepted sample, scored, on its way to storage (its node is the `StreamSeries` it is
/// appended with).
public struct ScoredSample: Sendable, Equatable {
    public var sample: Sample
    public var score: Double
    public var anomalous: Bool
}

/// One stream's accepted samples and their judgement, handed to a sink as the three arrays
/// the session and the scorer already hold.
///
/// Not an array of `ScoredSample`: building one copied every sample again (a `Sample` holds
/// its extra gauges, so each copy and each destroy is a call into its value witness), 7 % of
/// the server's CPU with 64-sample frames (perf, issue #17). Elements are made on access.
/// Immutable; the arrays are shared, not copied.
public struct ScoredSamples: RandomAccessCollection, Sendable {
    public let samples: [Sample]
    /// Per sample, 0...1. This and `flagged` hold at least `samples.count` values (a reused
    /// judgement may hold more); only the first `samples.count` count.
    public let scores: [Double]
    public let flagged: [Bool]

    public init(samples: [Sample], scores: [Double], flagged: [Bool]) {
        self.samples = samples
        self.scores = scores
        self.flagged = flagged
    }

    public var startIndex: Int { 0 }
    public var endIndex: Int { samples.count }
    public subscript(i: Int) -> ScoredSample { ScoredSample(sample: samples[i], score: scores[i], anomalous: flagged[i]) }
}

/// The node a stream's samples belong to — node, tenant, the Hello's labels — and their line
/// protocol series key, escaped once when the stream opens instead of once per outbox record
/// (at 10,000 agents × 1 sample/s, every record: 2.5 % of the server's CPU; issue #17, item 3).
///
/// Made by the session, shared with the sink; immutable but for `extraGauges`.
public final class StreamSeries: Sendable {
    public let node: String
    public let tenant: String
    public let labels: [Label]
    /// `SystemMetrics.seriesKey` of the above, or nil when line protocol cannot carry it.
    public let lineSeriesKey: [UInt8]?
    /// What making `lineSeriesKey` left out (counted again for every record written with it).
    public let lineSeriesDrops: LineProtocolDrops
    /// Which of the stream's extra gauges the store can write, judged once while its samples
    /// carry the same names (the sink packing them keeps it). Behind a lock though only the
    /// stream's own reactor thread stores its samples: uncontended, a lock and an unlock per
    /// record.
    public let extraGauges = Mutex(ExtraGaugePlan())

    public init(node: String, tenant: String, labels: [Label]) {
        self.node = node
        self.tenant = tenant
        self.labels = labels
        var drops = LineProtocolDrops()
        lineSeriesKey = SystemMetrics.seriesKey(node: node, tenant: tenant, labels: labels, drops: &drops)
        lineSeriesDrops = drops
    }
}

/// Where accepted samples go. The server acks samples once the sink says they are durable.
///
/// Threading: called from every reactor thread at once; implementations must be thread-safe
/// and must not block (hand work to a thread of their own).
public protocol SampleSink: AnyObject, Sendable {
    /// Takes one stream's samples (all of `series`, `record`'s node; highest seq `highestSeq`)
    /// and returns a ticket; they are durable once `durableTicket` reaches it, and the sink then
    /// calls `record.markDurable(highestSeq)`.
    func append(_ samples: ScoredSamples, series: StreamSeries, record: NodeRecord, highestSeq: UInt64) -> UInt64
    /// Stores incident openings and closings of `record`'s node (measurement
    /// `gridmon_incidents`) behind its samples; returns their ticket, or nil when the sink keeps
    /// no incidents.
    func appendIncidents(_ events: [IncidentEvent], record: NodeRecord, highestSeq: UInt64) -> UInt64?
    /// Every ticket at or below this is durable.
    var durableTicket: UInt64 { get }
    /// Why the sink cannot take or deliver samples now (reported by `/readyz` with a 503);
    /// nil when ready.
    var notReadyReason: String? { get }
    /// Samples accepted but not yet written: the queue between the server and the store.
    var queuedSamples: Int { get }
    /// At or above this many queued samples the server stops reading from agents
    /// (backpressure: agents buffer on their side); it resumes below `lowWater`.
    var highWater: Int { get }
    var lowWater: Int { get }
    /// True while the sink wants no more samples whatever its queue: its writes fail (a full
    /// disk) or its bounded store is full. The server stops reading agents until it is false
    /// (and the queue is below `lowWater`); agents buffer meanwhile, which is what their
    /// buffer is for.
    var refusesSamples: Bool { get }
    /// Nodes the sink found in its durable store at start, with their durable seq.
    var restoredNodes: [NodeKey: UInt64] { get }
    /// Starts the sink's own thread; `onDurable` is called (from it) when tickets become durable.
    func start(onDurable: @escaping @Sendable (UInt64) -> Void)
    /// Makes everything appended durable and stops (server shutdown).
    func stop()
    /// Lines of Prometheus text about the sink.
    var metricsText: String { get }
}

extension SampleSink {
    public func appendIncidents(_ events: [IncidentEvent], record: NodeRecord, highestSeq: UInt64) -> UInt64? { nil }
    public var refusesSamples: Bool { false }
    public var restoredNodes: [NodeKey: UInt64] { [:] }
    public func start(onDurable: @escaping @Sendable (UInt64) -> Void) {}
    public func stop() {}
    public var metricsText: String { "" }
}

/// Keeps nothing; counts what passed, and calls everything durable at once (`--store none`,
/// for benchmarks of the server alone and for tests of the protocol).
public final class CountingSink: SampleSink {
    private let counter = Atomic<UInt64>(0)
    public init() {}
    public var count: UInt64 { counter.value }
    public var notReadyReason: String? { nil }
    public var queuedSamples: Int { 0 }
    public var highWater: Int { Int.max }
    public var lowWater: Int { Int.max }
    public var durableTicket: UInt64 { UInt64.max }
    public func append(_ samples: ScoredSamples, series: StreamSeries, record: NodeRecord, highestSeq: UInt64) -> UInt64 {
        counter.add(UInt64(samples.count))
        record.markDurable(highestSeq)
        return 0
    }
}
