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
/// Level and shape are judged apart (issue #11): each metric's forest sees only how the
/// metric moves (`delta`, `std`, `deviation`, and the slow `trend`/`drift` when on), and where
/// it sits is the range term's job (`rangeScale`). A forest that also saw `value` and `mean`
/// read a healthy machine's slow daily drift as trouble: the 10-sample mean is a
/// low-noise level estimate, so a drift well inside the metric's usual noise moved it by
/// many of its own spreads. In the fleet simulation (50 nodes, 100 simulated minutes each)
/// that opened 127 false incidents; without the level features, 0, with every injected kind
/// still found, and ASD (offline) went 0.780 / 0.391 / 0.447 → 0.793 / 0.380 / 0.440.
/// `Options.levelFeatures` brings them back (files of version 1–3 have them).
///
/// A metric whose features were constant in training (a gauge a node never moves, a column
/// of zeros) has a forest of single leaves; it is *inactive*: never scored, its normalised
/// score is 0. A detector with no active metric is `degenerate` and never flags (issue #11:
/// a degenerate model scored every sample at its threshold and flagged them all).
///
/// Scores: `rawScores` are unbounded (≈0 normal, ≥1 unusual); `score01` maps them to 0...1
/// for storage. Pure and immutable.
public struct TemporalDetector: Sendable {
    public struct Options: Sendable {
        public var window = 10
        /// Samples of the slow features' horizon (`TemporalFeatures`), nil for feature set 1.
        /// Off by default: on ASD every horizon tried (10, 30, 60, 120, 600) lowered mean ROC-AUC
        /// (0.780 → 0.740…0.754); the window features already see a leak once it leaves its range.
        public var slowHorizon: Int? = nil
        /// 3. With the range term (below) 2 and 3 score alike on ASD (16 trees: 0.782 / 0.386 / 0.446
        /// and 0.780 / 0.384 / 0.446), and 3 opened a third as many false incidents in the fleet
        /// simulation (87 vs 292, `gridmon-flood --mode fleet --admin …`).
        public var topK = 3
        /// 16. With shape-only forests (three features each) more trees bought nothing on ASD
        /// (offline, mean ROC / PR / F1 at seed 0: 16 trees 0.795 / 0.376 / 0.441, 25 trees
        /// 0.794 / 0.381 / 0.444, 50 trees 0.793 / 0.380 / 0.440; seeds 1 and 2 alike) and
        /// scoring costs one walk per tree and metric. Eight cut cold scoring by a quarter but
        /// lost half a point of live ROC and PR-AUC on ASD (issue #17; README, "Agent-shaped nodes").
        public var trees = 16
        public var subsampleSize = 256
        public var seed: UInt64 = 0
        /// When set, a metric that leaves its training range by more than this many times the
        /// range's width scores at the threshold on its own (`ranges`); nil: forests only.
        /// 1: on ASD (16 trees, top-2) PR-AUC 0.353 → 0.386 and best F1 0.435 → 0.446 at the same
        /// ROC-AUC (scales 2 and 4 gained less); in the fleet simulation it turned memory-leak
        /// incidents found from 6/14 to 14/14.
        public var rangeScale: Double? = 1
        /// Raw score at or above which a row is anomalous (1 = the training 99th percentile,
        /// on average over the top-k metrics). 1.25 (issue #11: precision at the default
        /// threshold ≥ 0.5): through the live path (`Tools/eval-asd --live`, mean over the 12
        /// servers) 1.0 flagged at precision 0.310 / recall 0.464, 1.2 at 0.502 / 0.337, 1.25
        /// at 0.544 / 0.302 (offline 0.425 → 0.635); ROC, PR and best F1 do not depend on it.
        /// The fleet simulation (50 nodes × 6,000 samples) still found 96/96 incidents, with 0
        /// false ones instead of 1. A range excess still flags at one range width whatever the
        /// threshold (the range term is in the threshold's units).
        public var threshold = 1.25
        /// Whether each metric's forest also sees its `value` and `mean` (see above). Off.
        public var levelFeatures = false
        public init() {}
    }

    /// Smallest spread a metric's normalisation divides by. A metric that barely moved in
    /// training has a 99th percentile a hair above its median; dividing by that hair turned
    /// rounding noise into alarms. 0.02 is about a tenth of the score range a healthy metric uses.
    public static let minSpread = 0.02

    public let metrics: [String]
    public let window: Int
    public let slowHorizon: Int?
    public let topK: Int
    public let forests: [IsolationForest]
    /// Per metric: median of its training scores, and (99th percentile − median).
    public let medians: [Double]
    public let spreads: [Double]
    public var threshold: Double
    /// Per metric: false when its forest cannot split anything (constant in training).
    public let active: [Bool]
    /// Per metric: its training values' 0.1 % and 99.9 % quantiles, when `rangeScale` is set
    /// (used for active metrics only: a gauge flat in training, such as an idle disk's read
    /// rate, would flag its first burst).
    public let ranges: [ClosedRange<Double>]
    public let rangeScale: Double?
    /// Whether the forests see `value` and `mean`; `forestColumns` are the per-metric feature
    /// columns (indices into `TemporalFeatures.names`) each forest reads, in order.
    public let levelFeatures: Bool
    public let forestColumns: [Int]
    /// Per metric: its forest's scoring layout and scale, for `scores`.
    private let layouts: [ScoringLayout]
    private let scales: [Double]

    public init(metrics: [String], window: Int, slowHorizon: Int?, topK: Int, forests: [IsolationForest],
                medians: [Double], spreads: [Double], threshold: Double,
                ranges: [ClosedRange<Double>] = [], rangeScale: Double? = nil, levelFeatures: Bool) {
        self.levelFeatures = levelFeatures
        forestColumns = Self.forestColumns(slow: slowHorizon != nil, levelFeatures: levelFeatures)
        self.ranges = ranges
        self.rangeScale = ranges.count == metrics.count ? rangeScale : nil
        self.metrics = metrics
        self.window = window
        self.slowHorizon = slowHorizon
        self.topK = topK
        self.forests = forests
        self.medians = medians
        self.spreads = spreads
        self.threshold = threshold
        active = forests.map { forest in forest.layout.depths.contains { $0 > 0 } }
        // `scores` walks each forest's layout directly with rows of `forestColumns.count`
        // floats, past `IsolationForest.score`'s own check (fits make such forests, and
        // `DetectorFile.decode` throws on any other).
        let columns = forestColumns.count
        precondition(forests.count == metrics.count && forests.allSatisfy { $0.features.count == columns },
                     "a forest per metric over its forest columns")
        layouts = forests.map(\.layout)
        scales = forests.map(\.scale)
    }

    /// True when no metric is active: the detector cannot tell anything apart and never flags.
    public var isDegenerate: Bool { !active.contains(true) }

    /// Features per metric in a `TemporalFeatures` row (5 or 7).
    public var perMetric: Int { TemporalFeatures.names(slow: slowHorizon != nil).count }

    /// The per-metric feature columns a forest reads: all of them with `levelFeatures`, else
    /// all but `value` (column 0) and `mean` (column 2).
    public static func forestColumns(slow: Bool, levelFeatures: Bool) -> [Int] {
        let all = Array(TemporalFeatures.names(slow: slow).indices)
        return levelFeatures ? all : all.filter { $0 != 0 && $0 != 2 }
    }

    /// The feature names of a metric's forest (what a model file records for it).
    public static func forestFeatures(of metric: String, slow: Bool, levelFeatures: Bool) -> [String] {
        let names = TemporalFeatures.names(slow: slow)
        return forestColumns(slow: slow, levelFeatures: levelFeatures).map { "\(metric).\(names[$0])" }
    }

    /// A fresh feature stream matching this detector.
    public func makeFeatures() -> TemporalFeatures {
        TemporalFeatures(metrics: metrics.count, window: window, slowHorizon: slowHorizon)
    }

    /// Fits on time-ordered training rows (one value per metric).
    public static func fit(_ rows: [[Double]], metrics: [String], options: Options = Options(), createdUnix: Int64 = 0, source: String = "") -> TemporalDetector {
        let expanded = TemporalFeatures.expand(rows, metrics: metrics.count, window: options.window, slowHorizon: options.slowHorizon)
        return fit(features: expanded, metrics: metrics, options: options, createdUnix: createdUnix, source: source)
    }

    /// The per-metric feature columns a fit reads (indices into `TemporalFeatures.names`): the
    /// forests' columns and, with the range term, `value` (column 0). A live node keeps only
    /// these in its history: it kept every column, and `mean`, read by no fit since the level
    /// features went off by default, was a fifth of each node's history (issue #17).
    public static func fitColumns(_ options: Options) -> [Int] {
        let forest = forestColumns(slow: options.slowHorizon != nil, levelFeatures: options.levelFeatures)
        return options.rangeScale != nil && !forest.contains(0) ? [0] + forest : forest
    }

    /// Fits on feature rows already computed by a `TemporalFeatures` stream with `options`'
    /// window and horizon (one matrix per metric, rows in any order: the live learner's
    /// reservoir). `columns`: which of a `TemporalFeatures` row's columns the matrices hold,
    /// in order (nil: all of them); they must include `fitColumns(options)`. The fit is the
    /// same, bit for bit, whichever columns besides those are there.
    public static func fit(features expanded: [FeatureMatrix], columns stored: [Int]? = nil, metrics: [String],
                           options: Options = Options(), createdUnix: Int64 = 0, source: String = "") -> TemporalDetector {
        precondition(expanded.count == metrics.count && !metrics.isEmpty)
        let stored = stored ?? Array(TemporalFeatures.names(slow: options.slowHorizon != nil).indices)
        precondition(fitColumns(options).allSatisfy(stored.contains), "the matrices hold every column the fit reads")
        var forests: [IsolationForest] = []
        var medians: [Double] = []
        var spreads: [Double] = []
        var ranges: [ClosedRange<Double>] = []
        let slow = options.slowHorizon != nil
        let columns = forestColumns(slow: slow, levelFeatures: options.levelFeatures).map { stored.firstIndex(of: $0)! }
        let value = stored.firstIndex(of: 0)
        for (m, full) in expanded.enumerated() {
            let matrix = full.selecting(columns)
            var fit = FitOptions()
            fit.trees = options.trees
            fit.subsampleSize = options.subsampleSize
            fit.seed = options.seed &+ UInt64(m) &* 0x9E37_79B9
            fit.source = source
            let forest = IsolationForest.fit(matrix, features: forestFeatures(of: metrics[m], slow: slow, levelFeatures: options.levelFeatures),
                                             options: fit, createdUnix: createdUnix)
            var scores = forest.scores(normalisationRows(matrix))
            let q = quantiles(selecting: &scores, [0.5, 0.99])
            forests.append(forest)
            medians.append(q[0])
            spreads.append(max(q[1] - q[0], minSpread))
            if options.rangeScale != nil, let value {
                var values = (0..<full.rows).map { Double(full[$0, value]) }
                let r = quantiles(selecting: &values, [0.001, 0.999])
                ranges.append(r[0]...r[1])
            }
        }
        return TemporalDetector(metrics: metrics, window: options.window, slowHorizon: options.slowHorizon,
                                topK: min(options.topK, metrics.count), forests: forests, medians: medians, spreads: spreads,
                                threshold: options.threshold, ranges: ranges, rangeScale: options.rangeScale,
                                levelFeatures: options.levelFeatures)
    }

    /// Most training rows a metric's normalisation (median, 99th percentile) is estimated on.
    /// Scoring every row of a node's 4,096-row history cost the server as much CPU as
    /// scoring its live samples (`Tools/bench-detect`, 100 nodes); 1,024 evenly spaced rows
    /// put about ten above the 99th percentile.
    public static let normalisationRows = 1024

    /// At most `normalisationRows` of `matrix`, evenly spaced (all of them when fewer).
    static func normalisationRows(_ matrix: FeatureMatrix) -> FeatureMatrix {
        guard matrix.rows > normalisationRows else { return matrix }
        return matrix.selecting(rows: (0..<normalisationRows).map { $0 * matrix.rows / normalisationRows })
    }

    /// Raw scores of time-ordered rows (the features start from nothing at the first row).
    public func rawScores(_ rows: [[Double]]) -> [Double] {
        var features = makeFeatures()
        var scratch = Scratch()
        var out: [Double] = []
        var batch: [Float] = []
        var row: [Float] = []
        // In blocks, as the server scores a frame's samples together.
        var start = 0
        while start < rows.count {
            let end = min(start + 256, rows.count)
            batch.removeAll(keepingCapacity: true)
            for i in start..<end {
                features.push(rows[i], into: &row)
                batch += row
            }
            out += scores(featureRows: batch, count: end - start, scratch: &scratch)
            start = end
        }
        return out
    }

    /// Reusable buffers of `scores(featureRows:…)`.
    public struct Scratch: Sendable {
        var matrix: [Float] = []
        var metricScores: [Double] = []
        /// Per metric of the last call, row-major [row][metric]: the normalised scores.
        public internal(set) var normalised: [Double] = []
        var column: [Double] = []
        public init() {}
    }

    /// Raw scores of `count` feature rows (`metrics × perMetric` floats each, as
    /// `TemporalFeatures.push` writes them). Leaves each row's per-metric normalised scores in
    /// `scratch.normalised`, for explaining a verdict.
    public func scores(featureRows rows: [Float], count: Int, scratch: inout Scratch) -> [Double] {
        let width = perMetric
        let stride = metrics.count * width
        precondition(rows.count == count * stride)
        scratch.normalised = [Double](repeating: 0, count: count * metrics.count)
        guard count > 0 else { return [] }
        if scratch.metricScores.count < count { scratch.metricScores = [Double](repeating: 0, count: count) }
        let columns = forestColumns.count
        for m in metrics.indices where active[m] {
            scratch.matrix.removeAll(keepingCapacity: true)
            for i in 0..<count {
                let base = i * stride + m * width
                for c in forestColumns { scratch.matrix.append(rows[base + c]) }
            }
            // Through the forest's layout, not `forests[m].score`: see `ScoringLayout.score`.
            let layout = layouts[m], scale = scales[m]
            scratch.matrix.withUnsafeBufferPointer { x in
                scratch.metricScores.withUnsafeMutableBufferPointer { out in
                    layout.score(x.baseAddress!, rows: count, columns: columns, scale: scale, into: out.baseAddress!)
                }
            }
            for i in 0..<count {
                scratch.normalised[i * metrics.count + m] = (scratch.metricScores[i] - medians[m]) / spreads[m]
            }
        }
        var out = [Double](repeating: 0, count: count)
        if isDegenerate { return out }
        if let rangeScale {
            // A metric far outside its training range is trouble whatever its forest says (an
            // isolation score saturates: a value ten ranges out scores about as one range out).
            for i in 0..<count {
                for m in metrics.indices where active[m] {
                    let x = Double(rows[i * stride + m * width])
                    let r = ranges[m]
                    let excess = max(0, x - r.upperBound, r.lowerBound - x) / Self.rangeWidth(r)
                    out[i] = max(out[i], excess / rangeScale * threshold)
                }
            }
        }
        for i in 0..<count {
            scratch.column.removeAll(keepingCapacity: true)
            scratch.column.append(contentsOf: scratch.normalised[(i * metrics.count)..<((i + 1) * metrics.count)])
            out[i] = max(out[i], Self.topMean(&scratch.column, topK))
        }
        return out
    }

    /// A range's width for `rangeScale`, at least 1 % of its level (a constant gauge has none).
    static func rangeWidth(_ r: ClosedRange<Double>) -> Double {
        max(r.upperBound - r.lowerBound, 0.01 * max(abs(r.lowerBound), abs(r.upperBound)), 1e-9)
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

    /// Bytes the detector's forests hold (for the per-node memory report).
    public var byteCount: Int {
        forests.reduce(0) { $0 + $1.byteCount } + metrics.count * 56
    }
}
