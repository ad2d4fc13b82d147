import GridMonCore
import GridMonForest
import GridMonPosix
import Synchronization

/// Learns each node's own Isolation Forest in the background.
///
/// Per node it keeps a bounded reservoir (Vitter's Algorithm R) of feature rows: every sample
/// during the warm-up, then only samples its model did not flag. After `warmup` samples a
/// forest is fit on the reservoir, and again every `refitEvery` samples, on a thread of its
/// own — the reactors only copy a reservoir into a bounded job queue (full queue: the refit is
/// skipped and counted, and retried on a later sample). Finished models go into the
/// `ModelRegistry`, so the node's next batch is scored by them.
///
/// Threading: `observe` from any reactor thread; one trainer thread. Memory: at most
/// `reservoirSize × features` floats per node, and `maxQueued` reservoir copies in the queue.
public final class NodeLearner: @unchecked Sendable {  // mutable state is behind `state` and `queue`
    public struct Options: Sendable {
        public var warmup = 3600
        public var refitEvery = 3600
        public var reservoirSize = 512
        public var trees = 50
        public var maxQueued = 64
        public init() {}
    }

    private struct NodeHistory {
        var seen = 0
        var sinceFit = 0
        var fitted = false
        var queued = false
        var rows: [Float] = []
        var rng: SplitMix64
    }

    private struct Job {
        let node: NodeKey
        let features: [String]
        let rows: [Float]
    }

    public let options: Options
    private let registry: ModelRegistry
    private let state = Mutex<[NodeKey: NodeHistory]>([:])
    private var trainer: WorkQueue<Job>!
    public let fits = Atomic<UInt64>(0)
    public let skipped = Atomic<UInt64>(0)

    public init(options: Options, registry: ModelRegistry) {
        self.options = options
        self.registry = registry
        trainer = WorkQueue(capacity: options.maxQueued) { [unowned self] job in train(job) }
    }

    /// Starts the trainer thread.
    public func start() { trainer.start() }

    /// Stops the trainer after the job in hand.
    public func stop() { trainer.stop() }

    /// Records a node's scored samples: `rows` holds `count` rows of `features.count` floats.
    public func observe(node: NodeKey, features: [String], rows: [Float], flagged: [Bool]) {
        let width = features.count
        let count = flagged.count
        var job: Job?
        state.withLock { table in
            var history = table[node] ?? NodeHistory(rng: SplitMix64(seed: FNV1a.hash(node.node)))
            for i in 0..<count {
                history.seen += 1
                history.sinceFit += 1
                // During the warm-up every sample is history; afterwards only the unflagged.
                if history.fitted && flagged[i] { continue }
                let row = rows[(i * width)..<((i + 1) * width)]
                let stored = history.rows.count / width
                if stored < options.reservoirSize {
                    history.rows.append(contentsOf: row)
                } else {
                    let slot = Int(history.rng.next() % UInt64(history.seen))
                    if slot < options.reservoirSize {
                        history.rows.replaceSubrange((slot * width)..<((slot + 1) * width), with: row)
                    }
                }
            }
            let due = history.fitted ? history.sinceFit >= options.refitEvery : history.seen >= options.warmup
            if due && !history.queued && history.rows.count >= 2 * width {
                history.queued = true
                job = Job(node: node, features: features, rows: history.rows)
            }
            table[node] = history
        }
        if let job { enqueue(job) }
    }

    /// Drops the histories of nodes the server forgot.
    public func forget(_ keys: [NodeKey]) {
        state.withLock { table in for key in keys { table[key] = nil } }
    }

    private func enqueue(_ job: Job) {
        guard !trainer.submit(job) else { return }
        skipped.add()
        state.withLock { $0[job.node]?.queued = false }
    }

    private func train(_ job: Job) {
        var fit = FitOptions()
        fit.trees = options.trees
        fit.seed = FNV1a.hash(job.node.node)
        fit.source = "node \(job.node) history"
        let matrix = FeatureMatrix(columns: job.features.count, values: job.rows)
        var model = IsolationForest.fit(matrix, features: job.features, options: fit, createdUnix: Clock.unixNanos() / 1_000_000_000)
        if model.trees.allSatisfy({ $0.depth == 0 }) {
            // Constant history (every tree one leaf): every score equals every other, so no
            // threshold separates anything. Never flag; refits continue as history grows
            // (issue #11: such a model flagged every sample and so never learned again).
            model.threshold = .infinity
        } else {
            // A node model flags what its own history makes rare: threshold at its 99th percentile.
            model.threshold = max(0.5, quantile(model.scores(matrix), 0.99))
        }
        let installed = registry.setNodeModel(model, for: job.node)
        if installed { fits.add() } else { skipped.add() }
        state.withLock { table in
            guard var history = table[job.node] else { return }
            history.queued = false
            history.fitted = history.fitted || installed
            history.sinceFit = 0
            table[job.node] = history
        }
    }
}
