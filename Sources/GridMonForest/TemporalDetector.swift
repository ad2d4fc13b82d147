import GridMonCore

/// GridMon's detector beyond a plain Isolation Forest: one small forest per metric over that
/// metric's temporal features (`TemporalFeatures`), scores normalised per metric, and the
/// mean of the `topK` highest normalised scores as the verdict.
///
/// Why: on real server telemetry an incident usually shows in a few metrics and in how they
/// move, not in where all metrics sit at once. Per metric, a forest sees that metric's
/// shape; normalising each by its own training scores (median → 0, 99th percentile → 1) makes
/// metrics comparable; the top-k mean needs more than one metric to agree, which cuts the
/// false alarms of taking the single maximum. No per-server tuning: window, k and forest
/// sizes are the defaults below on every server.
///
/// Scores: `rawScores` are unbounded (≈0 normal, ≥1 unusual); `score01` maps them to 0...1
/// for storage. Pure and immutable.
public struct TemporalDetector: Sendable {
    public struct Options: Sendable {
        public var window = 10
        public var topK = 3
        public var trees = 50
        public var subsampleSize = 256
        public var seed: UInt64 = 0
        /// Raw score at or above which a row is anomalous (1 = the training 99th percentile,
        /// on average over the top-k metrics).
        public var threshold = 1.0
        public init() {}
    }

    public let metrics: [String]
    public let window: Int
    public let topK: Int
    public let forests: [IsolationForest]
    /// Per metric: median of its training scores, and (99th percentile − median).
    public let medians: [Double]
    public let spreads: [Double]
    public var threshold: Double

    public init(metrics: [String], window: Int, topK: Int, forests: [IsolationForest], medians: [Double], spreads: [Double], threshold: Double) {
        self.metrics = metrics
        self.window = window
        self.topK = topK
        self.forests = forests
        self.medians = medians
        self.spreads = spreads
        self.threshold = threshold
    }

    /// Fits on time-ordered training rows (one value per metric).
    public static func fit(_ rows: [[Double]], metrics: [String], options: Options = Options(), createdUnix: Int64 = 0, source: String = "") -> TemporalDetector {
        let expanded = TemporalFeatures.expand(rows, metrics: metrics.count, window: options.window)
        var forests: [IsolationForest] = []
        var medians: [Double] = []
        var spreads: [Double] = []
        for (m, matrix) in expanded.enumerated() {
            var fit = FitOptions()
            fit.trees = options.trees
            fit.subsampleSize = options.subsampleSize
            fit.seed = options.seed &+ UInt64(m) &* 0x9E37_79B9
            fit.source = source
            let names = TemporalFeatures.names.map { "\(metrics[m]).\($0)" }
            let forest = IsolationForest.fit(matrix, features: names, options: fit, createdUnix: createdUnix)
            let scores = forest.scores(matrix)
            let median = quantile(scores, 0.5)
            forests.append(forest)
            medians.append(median)
            spreads.append(max(quantile(scores, 0.99) - median, 1e-9))
        }
        return TemporalDetector(metrics: metrics, window: options.window, topK: min(options.topK, metrics.count),
                                forests: forests, medians: medians, spreads: spreads, threshold: options.threshold)
    }

    /// Raw scores of time-ordered rows (the window restarts at the first row).
    public func rawScores(_ rows: [[Double]]) -> [Double] {
        let expanded = TemporalFeatures.expand(rows, metrics: metrics.count, window: window)
        var normalised = [[Double]](repeating: [], count: metrics.count)
        for m in metrics.indices {
            normalised[m] = forests[m].scores(expanded[m]).map { ($0 - medians[m]) / spreads[m] }
        }
        var out = [Double](repeating: 0, count: rows.count)
        var column = [Double](repeating: 0, count: metrics.count)
        for i in 0..<rows.count {
            for m in metrics.indices { column[m] = normalised[m][i] }
            out[i] = Self.topMean(&column, topK)
        }
        return out
    }

    /// Mean of the k largest values (partial selection; `values` is reordered).
    static func topMean(_ values: inout [Double], _ k: Int) -> Double {
        var sum = 0.0
        for j in 0..<k {
            var best = j
            for i in (j + 1)..<values.count where values[i] > values[best] { best = i }
            values.swapAt(j, best)
            sum += values[j]
        }
        return sum / Double(k)
    }

    /// A raw score as an anomaly score in 0...1: 0 up to the training median, 0.5 at the
    /// training 99th percentile, towards 1 beyond.
    public static func score01(_ raw: Double) -> Double {
        raw <= 0 ? 0 : raw / (1 + raw)
    }
}
