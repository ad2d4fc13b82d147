import GridMonCore
import GridMonForest
import GridMonPosix
import GridMonWire
import Synchronization

/// Every node's live detector, the thread that fits them, and the incident book (issue #11).
///
/// A node's `NodeDetector` sits behind its own lock (one connection owns a node at a time, so
/// it is uncontended); the table lock is held only to find or make it. Fits run on one
/// trainer thread: a reactor copies the node's history into a bounded job queue (full: the
/// fit is skipped, counted, and retried later) and never waits for a fit.
///
/// Bounded: at most `maxNodes` detectors (past it a node is not judged, counted in
/// `unjudgedSamples`), `maxQueued` jobs. Threading: `judge` from any reactor thread.
public final class DetectorBank: @unchecked Sendable {  // mutable state is behind locks; `thread` is touched by start/stop only
    private final class Slot: Sendable {
        let detector: Mutex<NodeDetector>
        init(_ detector: NodeDetector) { self.detector = Mutex(detector) }
    }

    public let options: LiveDetectorOptions
    public let maxNodes: Int
    public let maxQueued = 64
    public let incidents: IncidentBook
    private let prior: Mutex<Detector?>
    private let slots = Mutex<[NodeKey: Slot]>([:])
    private let queue = Mutex<(jobs: [TrainingJob], stopped: Bool)>(([], false))
    private let wake = Semaphore()
    private var thread: PosixThread?
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
        self.prior = Mutex(prior)
        self.maxNodes = maxNodes
        self.incidents = incidents
        ids = Atomic(firstID)
    }

    /// Replaces the configured model (a reload); nodes' own detectors stay.
    public func replacePrior(_ detector: Detector?) {
        prior.withLock { $0 = detector }
    }

    public var hasPrior: Bool { prior.withLock { $0 != nil } }

    /// Judges one batch of `key`'s samples and records the incidents it opens or closes.
    public func judge(_ samples: [Sample], key: NodeKey, into out: inout Judgement) -> [IncidentEvent] {
        let slot = slots.withLock { table -> Slot? in
            if let slot = table[key] { return slot }
            guard table.count < maxNodes else { return nil }
            let slot = Slot(NodeDetector(key: key, options: options))
            table[key] = slot
            return slot
        }
        guard let slot else {
            out.scores = [Double](repeating: 0, count: samples.count)
            out.flagged = [Bool](repeating: false, count: samples.count)
            out.state = .off
            unjudgedSamples.add(UInt64(samples.count))
            return []
        }
        let configured = prior.withLock { $0 }
        let (events, job) = slot.detector.withLock { d -> ([IncidentEvent], TrainingJob?) in
            let events = d.observe(samples, prior: configured, nextID: { ids.add(1, ordering: .relaxed).newValue }, into: &out)
            return (events, d.takeJob())
        }
        if let job { enqueue(job, slot: slot) }
        incidents.record(events)
        return events
    }

    /// A node's detection state, metrics and bytes (nil when it has no detector).
    public func describe(_ key: NodeKey) -> (state: DetectorState, metrics: Int, samples: Int, bytes: Int)? {
        guard let slot = slots.withLock({ $0[key] }) else { return nil }
        return slot.detector.withLock { ($0.state, $0.metrics.count, $0.samples, $0.byteCount) }
    }

    /// Detectors held and the bytes they hold in total.
    public func footprint() -> (nodes: Int, bytes: Int) {
        let all = slots.withLock { Array($0.values) }
        return (all.count, all.reduce(0) { $0 + $1.detector.withLock { $0.byteCount } })
    }

    /// Drops the detectors (and open incidents) of nodes the server forgot.
    public func forget(_ keys: [NodeKey]) {
        slots.withLock { table in for key in keys { table[key] = nil } }
        incidents.forget(keys)
    }

    // MARK: - Trainer

    /// Starts the trainer thread.
    public func start() {
        guard thread == nil else { return }
        thread = PosixThread { [self] in trainLoop() }
    }

    /// Stops the trainer after the fit in hand.
    public func stop() {
        guard let thread else { return }
        queue.withLock { $0.stopped = true }
        wake.signal()
        thread.join()
        self.thread = nil
    }

    private func enqueue(_ job: TrainingJob, slot: Slot) {
        let accepted = queue.withLock { q -> Bool in
            guard !q.stopped, q.jobs.count < maxQueued else { return false }
            q.jobs.append(job)
            return true
        }
        if accepted {
            wake.signal()
        } else {
            skippedFits.add()
            slot.detector.withLock { $0.install(nil, atSample: job.atSample) }
        }
    }

    private func trainLoop() {
        while true {
            let (job, stopped) = queue.withLock { q -> (TrainingJob?, Bool) in
                if q.stopped { return (nil, true) }
                return (q.jobs.isEmpty ? nil : q.jobs.removeFirst(), false)
            }
            if stopped { return }
            guard let job else {
                wake.wait()
                continue
            }
            let started = Clock.monotonicNanos()
            let detector = Self.fit(job, options: options.detector)
            fitNanos.add(UInt64(max(0, Clock.monotonicNanos() - started)))
            fits.add()
            if detector.isDegenerate { degenerateFits.add() }
            if let slot = slots.withLock({ $0[job.key] }) {
                slot.detector.withLock { $0.install(detector, atSample: job.atSample) }
            }
        }
    }

    /// Fits a node's temporal detector on its history (deterministic in the node and its count).
    public static func fit(_ job: TrainingJob, options: TemporalDetector.Options) -> TemporalDetector {
        let width = TemporalFeatures.names(slow: options.slowHorizon != nil).count
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
        options.seed = stableSeed(job.key.description) &+ UInt64(job.atSample)
        return TemporalDetector.fit(features: matrices, metrics: job.metrics, options: options, source: "node \(job.key) history")
    }
}

extension Atomic where Value == UInt64 {
    func add(_ n: UInt64 = 1) { _ = wrappingAdd(n, ordering: .relaxed) }
}
