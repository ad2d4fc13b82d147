import GridMonCore
import GridMonDetect
import GridMonNotify
import GridMonForest
import GridMonPosix
import GridMonWire

/// Judges a node's samples (a score 0...1 and a verdict each) — the hook detection plugs into.
///
/// Threading: one per reactor thread, called on it; must not block.
public protocol Scorer: AnyObject {
    /// Writes one score and one verdict per sample into `verdicts`, and how they were judged.
    func score(_ samples: [Sample], key: NodeKey, into verdicts: inout Judgement)
    /// The incidents the last `score` call opened or closed (to store with its samples).
    func takeEvents() -> [IncidentEvent]
}

extension Scorer {
    public func takeEvents() -> [IncidentEvent] { [] }
}

/// A static rule (`--scorer static`): the highest of CPU, memory and disk percent, scaled to
/// 0...1. Flags a sample when one of them is at or above `threshold`.
public final class UtilizationScorer: Scorer {
    public let threshold: Double

    public init(threshold: Double = 0.95) {
        self.threshold = threshold
    }

    public func score(_ samples: [Sample], key: NodeKey, into verdicts: inout Judgement) {
        verdicts.scores.removeAll(keepingCapacity: true)
        verdicts.flagged.removeAll(keepingCapacity: true)
        for sample in samples {
            let peak = max(sample.cpuPercent, sample.memoryPercent, sample.diskPercent) / 100
            let score = peak.isFinite ? min(1, max(0, peak)) : 0
            verdicts.scores.append(score)
            verdicts.flagged.append(score >= threshold)
        }
        verdicts.state = .active
    }
}

/// Scores with each node's live temporal detector (`--scorer temporal`, the default): learns
/// the node's baseline, judges it once learnt, and turns flagged samples into incidents, each
/// logged once when it opens and once when it closes (issue #11).
public final class DetectorScorer: Scorer {
    private let bank: DetectorBank
    private let notifier: Notifier?
    private var events: [IncidentEvent] = []

    public init(bank: DetectorBank, notifier: Notifier? = nil) {
        self.bank = bank
        self.notifier = notifier
    }

    public func score(_ samples: [Sample], key: NodeKey, into verdicts: inout Judgement) {
        events = bank.judge(samples, key: key, into: &verdicts)
        for event in events { Self.log(event) }
        notifier?.submit(events)
    }

    public func takeEvents() -> [IncidentEvent] {
        defer { events.removeAll(keepingCapacity: true) }
        return events
    }

    static func log(_ event: IncidentEvent) {
        let i = event.incident
        var fields: KeyValuePairs<String, Any> = [:]
        switch event {
        case .opened:
            fields = ["id": i.id, "tenant": i.tenant, "node": i.node, "start_ns": i.startNs, "peak_score": rounded(i.peakScore),
                      "drivers": i.summary]
            Log.warning("incident_opened", fields)
        case .closed:
            fields = ["id": i.id, "tenant": i.tenant, "node": i.node, "start_ns": i.startNs, "end_ns": i.endNs ?? 0,
                      "duration_s": Double((i.endNs ?? i.startNs) - i.startNs) / 1e9, "flagged": i.flagged,
                      "peak_score": rounded(i.peakScore), "drivers": i.summary]
            Log.info("incident_closed", fields)
        }
    }

    private static func rounded(_ v: Double) -> Double { (v * 1000).rounded() / 1000 }
}

/// Scores with Isolation Forests (`--scorer forest`): the node's own model once learned, else
/// its tenant's, else the default (`ModelRegistry`); feeds the node's history to the
/// `NodeLearner`. Point-wise, without incidents: the original GridMon's scoring, kept for
/// models trained offline on fleet data.
///
/// One per reactor thread (it reuses its buffers); the registry and learner are shared.
public final class ForestScorer: Scorer {
    private let registry: ModelRegistry
    private let learner: NodeLearner?
    private var rows: [Float] = []
    private var matrixScores: [Double] = []
    private var learnerRows: [Float] = []
    /// Node models learn from every fixed gauge, whatever the shared model reads.
    public static let nodeFeatures = SampleFeatures(["cpu", "memory", "disk", "load1", "net_rx", "net_tx", "disk_read", "disk_write"])

    public init(registry: ModelRegistry, learner: NodeLearner?) {
        self.registry = registry
        self.learner = learner
    }

    public func score(_ samples: [Sample], key: NodeKey, into verdicts: inout Judgement) {
        let (scoring, _) = registry.model(node: key.node, tenant: key.tenant)
        let model = scoring.forest
        rows.removeAll(keepingCapacity: true)
        for sample in samples { scoring.features.append(sample, to: &rows) }
        if matrixScores.count != samples.count { matrixScores = [Double](repeating: 0, count: samples.count) }
        model.score(FeatureMatrix(columns: model.features.count, values: rows), into: &matrixScores)
        verdicts.scores = matrixScores
        verdicts.flagged = matrixScores.map { $0 >= model.threshold }
        verdicts.state = .active
        if let learner {
            let learned = Self.nodeFeatures
            if model.features == learned.names {
                learner.observe(node: key, features: learned.names, rows: rows, flagged: verdicts.flagged)
            } else {
                learnerRows.removeAll(keepingCapacity: true)
                for sample in samples { learned.append(sample, to: &learnerRows) }
                learner.observe(node: key, features: learned.names, rows: learnerRows, flagged: verdicts.flagged)
            }
        }
    }
}
