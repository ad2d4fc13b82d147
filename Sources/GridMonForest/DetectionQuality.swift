/// How well anomaly scores separate labelled anomalies (label 1) from normal points (0).
///
/// The three figures the shared data's baseline reports, computed as scikit-learn does:
/// ROC-AUC (`roc_auc_score`, ties counted half), PR-AUC as average precision
/// (`average_precision_score`: Σ (Rₙ − Rₙ₋₁) Pₙ over distinct thresholds) and the best
/// point-wise F1 over all thresholds (no point adjustment). Pure.
public struct DetectionQuality: Sendable, Equatable {
    public var rocAUC: Double
    public var prAUC: Double
    public var bestF1: Double
    /// The score threshold (flag `score >= threshold`) that gives `bestF1`.
    public var bestThreshold: Double

    public init(scores: [Double], labels: [Bool]) {
        precondition(scores.count == labels.count && !scores.isEmpty)
        let positives = labels.filter { $0 }.count
        let negatives = labels.count - positives
        // Highest score first; equal scores form one threshold step.
        let order = scores.indices.sorted { scores[$0] > scores[$1] }
        var tp = 0, fp = 0
        var previousRecall = 0.0
        var ap = 0.0
        var best = (f1: 0.0, threshold: scores[order[0]])
        var auc = 0.0
        var previousFP = 0, previousTP = 0
        var i = 0
        while i < order.count {
            let threshold = scores[order[i]]
            while i < order.count && scores[order[i]] == threshold {
                if labels[order[i]] { tp += 1 } else { fp += 1 }
                i += 1
            }
            // Trapezoid under the ROC curve for this step (ties give the diagonal: half credit).
            auc += Double(fp - previousFP) * Double(tp + previousTP) / 2
            previousFP = fp
            previousTP = tp
            guard positives > 0 else { continue }
            let precision = Double(tp) / Double(tp + fp)
            let recall = Double(tp) / Double(positives)
            ap += (recall - previousRecall) * precision
            previousRecall = recall
            let f1 = tp == 0 ? 0 : 2 * precision * recall / (precision + recall)
            if f1 > best.f1 { best = (f1, threshold) }
        }
        rocAUC = positives == 0 || negatives == 0 ? .nan : auc / (Double(positives) * Double(negatives))
        prAUC = positives == 0 ? .nan : ap
        bestF1 = best.f1
        bestThreshold = best.threshold
    }
}
