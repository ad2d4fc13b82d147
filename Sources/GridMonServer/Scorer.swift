import GridMonForest
import GridMonWire

/// Scores samples for anomaly, 0...1 (higher = more anomalous), the hook the Isolation Forest
/// plugs into.
///
/// Threading: called on the reactor thread that owns the connection; must not block.
public protocol Scorer: AnyObject {
    /// Writes one score per sample into `scores` (same count as `samples`) and returns the
    /// threshold that applies to them: scores at or above it are anomalies.
    func score(_ samples: [Sample], node: String, tenant: String, into scores: inout [Double]) -> Double
}

/// A static rule (`--scorer static`): the highest of CPU, memory and disk percent, scaled to
/// 0...1. Flags a sample when one of them is at or above `threshold`.
public final class UtilizationScorer: Scorer {
    public let threshold: Double

    public init(threshold: Double = 0.95) {
        self.threshold = threshold
    }

    public func score(_ samples: [Sample], node: String, tenant: String, into scores: inout [Double]) -> Double {
        scores.removeAll(keepingCapacity: true)
        for sample in samples {
            let peak = max(sample.cpuPercent, sample.memoryPercent, sample.diskPercent) / 100
            scores.append(peak.isFinite ? min(1, max(0, peak)) : 0)
        }
        return threshold
    }
}

/// Scores with Isolation Forests: the node's own model once learned, else its tenant's, else
/// the default (`ModelRegistry`); feeds the node's history to the `NodeLearner`.
///
/// One per reactor thread (it reuses its buffers); the registry and learner are shared.
public final class ForestScorer: Scorer {
    private let registry: ModelRegistry
    private let learner: NodeLearner?
    private var rows: [Float] = []
    private var matrixScores: [Double] = []
    private var flagged: [Bool] = []
    private var learnerRows: [Float] = []
    /// Node models learn from every fixed gauge, whatever the shared model reads.
    public static let nodeFeatures = SampleFeatures(["cpu", "memory", "disk", "load1", "net_rx", "net_tx", "disk_read", "disk_write"])

    public init(registry: ModelRegistry, learner: NodeLearner?) {
        self.registry = registry
        self.learner = learner
    }

    public func score(_ samples: [Sample], node: String, tenant: String, into scores: inout [Double]) -> Double {
        let (scoring, _) = registry.model(node: node, tenant: tenant)
        let model = scoring.forest
        rows.removeAll(keepingCapacity: true)
        for sample in samples { scoring.features.append(sample, to: &rows) }
        if scores.count != samples.count { scores = [Double](repeating: 0, count: samples.count) }
        model.score(FeatureMatrix(columns: model.features.count, values: rows), into: &scores)
        if let learner {
            flagged.removeAll(keepingCapacity: true)
            for score in scores { flagged.append(score >= model.threshold) }
            let learned = Self.nodeFeatures
            if model.features == learned.names {
                learner.observe(node: NodeKey(tenant: tenant, node: node), features: learned.names, rows: rows, flagged: flagged)
            } else {
                learnerRows.removeAll(keepingCapacity: true)
                for sample in samples { learned.append(sample, to: &learnerRows) }
                learner.observe(node: NodeKey(tenant: tenant, node: node), features: learned.names, rows: learnerRows, flagged: flagged)
            }
        }
        return model.threshold
    }
}
