import GridMonWire

/// Scores samples for anomaly, 0...1 (higher = more anomalous), the hook the Isolation Forest
/// plugs into.
///
/// Threading: called on the reactor thread that owns the connection; must not block.
public protocol Scorer: AnyObject {
    /// Scores at or above this are reported as anomalies in acks.
    var threshold: Double { get }
    /// Writes one score per sample into `scores` (same count as `samples`).
    func score(_ samples: [Sample], node: String, into scores: inout [Double])
}

/// A trivial stand-in until the Isolation Forest lands: the highest of CPU, memory and disk
/// percent, scaled to 0...1. Flags a sample when one of them is at or above `threshold`.
public final class UtilizationScorer: Scorer {
    public let threshold: Double

    public init(threshold: Double = 0.95) {
        self.threshold = threshold
    }

    public func score(_ samples: [Sample], node: String, into scores: inout [Double]) {
        scores.removeAll(keepingCapacity: true)
        for sample in samples {
            let peak = max(sample.cpuPercent, sample.memoryPercent, sample.diskPercent) / 100
            scores.append(peak.isFinite ? min(1, max(0, peak)) : 0)
        }
    }
}
