import GridMonCore
import GridMonForest
import GridMonPosix
import GridMonWire
import Synchronization

/// Every node's live detector, the thread that fits them, and the incident book (issue #11).
///
/// A node's `NodeDetector` sits behind its own lock (one connection owns a node at a time, so
/// it is uncontended); the table lock is held only to find or make it. Fits run on one
/// trainer thread, first come first served: a reactor queues the node's key when a fit is
/// due and never waits for a fit; the trainer copies the node's history when it gets to it.
/// (Issue #17: the queue used to hold 64 histories, and a fit that found it full was retried
/// 30 samples later, so a fleet that started together, every node due in the same second,
/// got 64 detectors per retry: 3,909 of 10,000 nodes judged after 9 minutes.)
///
/// Bounded: at most `maxNodes` detectors (past it a node is not judged, counted in
/// `unjudgedSamples`), so at most `maxNodes` keys queued (a node is queued once until its
/// fit is installed) and one history copied at a time. Threading: `judge` from any reactor
/// thread.
public final class DetectorBank: @unchecked Sendable {  // mutable state is behind `table`; `trainer` is set once in init
    private final class Slot: Sendable {
        let detector: Mutex<NodeDetector>
        init(_ detector: NodeDetector) { self.detector = Mutex(detector) }
    }

    public let options: LiveDetectorOptions
    public let maxNodes: Int
    public let incidents: IncidentBook
    /// The per-node slots and the configured model, under one lock taken once per batch.
    private let table: Mutex<(slots: [NodeKey: Slot], prior: ConfiguredModel?)>
    private var trainer: WorkQueue<NodeKey>!
    private let ids: Atomic<UInt64>

    public let fits = Atomic<UInt64>(0)
    public let degenerateFits = Atomic<UInt64>(0)
    public let skippedFits = Atomic<UInt64>(0)
    public let unjudgedSamples = Atomic<UInt64>(0)
    public let fitNanos = Atomic<UInt64>(0)

    /// - Parameters:
    ///   - prior: a configured model (`--model`) that judges nodes still learning; nil: they are not judged.
    ///   - firstID: the first incident id (the server passes its start time in µs, so ids stay unique across restarts).
    public init(options: LiveDetectorOptions, prior: Detector?, maxNodes: Int, incidents: IncidentBook, firstID: UInt64) {
        self.options = options
        table = Mutex(([:], prior.map(ConfiguredModel.init)))
        self.maxNodes = maxNodes
        self.incidents = incidents
        ids = Atomic(firstID)
        trainer = WorkQueue(capacity: max(1, maxNodes)) { [unowned self] key in train(key) }
    }

    /// Replaces the configured model (a reload); nodes' own detectors stay.
    public func replacePrior(_ detector: Detector?) {
        table.withLock { $0.prior = detector.map(ConfiguredModel.init) }
    }

    public var hasPrior: Bool { table.withLock { $0.prior != nil } }

    /// Judges one batch of `key`'s samples and records the incidents it opens or closes.
    public func judge(_ samples: [Sample], key: NodeKey, into out: inout Judgement) -> [IncidentEvent] {
        let (slot, configured) = table.withLock { t -> (Slot?, ConfiguredModel?) in
            if let slot = t.slots[key] { return (slot, t.prior) }
            guard t.slots.count < maxNodes else { return (nil, nil) }
            let slot = Slot(NodeDetector(key: key, options: options))
            t.slots[key] = slot
            return (slot, t.prior)
        }
        guard let slot else {
            out.scores = [Double](repeating: 0, count: samples.count)
            out.flagged = [Bool](repeating: false, count: samples.count)
            out.state = .off
            unjudgedSamples.add(UInt64(samples.count))
            return []
        }
        let (events, due) = slot.detector.withLock { d -> ([IncidentEvent], Bool) in
            let events = d.observe(samples, prior: configured, nextID: { ids.add(1, ordering: .relaxed).newValue }, into: &out)
            return (events, d.fitIsDue())
        }
        if due { enqueue(key, slot: slot) }
        incidents.record(events)
        return events
    }

    /// A node's detection state, metrics and bytes (nil when it has no detector).
    public func describe(_ key: NodeKey) -> (state: DetectorState, metrics: Int, samples: Int, bytes: Int)? {
        guard let slot = table.withLock({ $0.slots[key] }) else { return nil }
        return slot.detector.withLock { ($0.state, $0.metrics.count, $0.samples, $0.byteCount) }
    }

    /// Detectors held and the bytes they hold in total.
    public func footprint() -> (nodes: Int, bytes: Int) {
        let all = table.withLock { Array($0.slots.values) }
        return (all.count, all.reduce(0) { $0 + $1.detector.withLock { $0.byteCount } })
    }

    /// Drops the detectors (and open incidents) of nodes the server forgot.
    public func forget(_ keys: [NodeKey]) {
        table.withLock { t in for key in keys { t.slots[key] = nil } }
        incidents.forget(keys)
    }

    // MARK: - Trainer

    /// Starts the trainer thread.
    public func start() { trainer.start() }

    /// Stops the trainer after the fit in hand.
    public func stop() { trainer.stop() }

    private func enqueue(_ key: NodeKey, slot: Slot) {
        guard !trainer.submit(key) else { return }
        skippedFits.add()  // only when stopped: each node is queued at most once, and there are at most maxNodes
        slot.detector.withLock { $0.install(nil) }
    }

    private func train(_ key: NodeKey) {
        guard let slot = table.withLock({ $0.slots[key] }),  // forgotten meanwhile: nothing to fit
              let job = slot.detector.withLock({ $0.makeJob() }) else { return }
        let started = Clock.monotonicNanos()
        let detector = Self.fit(job, options: options.detector)
        fitNanos.add(UInt64(max(0, Clock.monotonicNanos() - started)))
        fits.add()
        if detector.isDegenerate { degenerateFits.add() }
        slot.detector.withLock { $0.install(detector) }
    }

    /// Fits a node's temporal detector on its history (deterministic in the node and its count).
    public static func fit(_ job: TrainingJob, options: TemporalDetector.Options) -> TemporalDetector {
        let kept = TemporalDetector.fitColumns(options)
        let width = kept.count
        let metrics = job.metrics.count
        var matrices = (0..<metrics).map { _ in FeatureMatrix(columns: width) }
        for m in 0..<metrics { matrices[m].reserve(rows: job.rows) }
        for r in 0..<job.rows {
            let base = r * metrics * width
            for m in 0..<metrics {
                matrices[m].append(floats: job.features[(base + m * width)..<(base + (m + 1) * width)])
            }
        }
        var options = options
        options.seed = FNV1a.hash(job.key.description) &+ UInt64(job.atSample)
        return TemporalDetector.fit(features: matrices, columns: kept, metrics: job.metrics, options: options,
                                    source: "node \(job.key) history")
    }
}
