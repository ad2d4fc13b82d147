/// Turns a stream of metric rows into per-metric temporal features, in O(1) per sample and metric.
///
/// For each metric x at time t, over the last `window` samples (fewer at the start):
/// `value` x, `delta` x − x₍ₜ₋₁₎, rolling `mean`, rolling `std` (population), `deviation`
/// x − mean. A level shift, a spike, a stuck metric or a burst of jitter each move one of
/// these even when the raw value stays in its usual range, which a point-wise model cannot see.
///
/// With a slow horizon H (feature set 2, issue #11) two more: `trend`, the exponentially
/// weighted mean of the deltas (α = 2/(H+1)) times H — how far the metric moved over about
/// the last H samples — and `drift`, x minus its exponentially weighted mean. A memory leak or
/// a filling disk moves them long before the value leaves its usual range. H is in samples
/// (the detector never sees a clock): 60 is a minute of the agent's 1 s samples, an hour of
/// one-minute data.
///
/// The rolling mean and variance are kept as a running sum and sum of squared deviations
/// (Welford's update, with the sample leaving the window removed), recomputed exactly every
/// `exactEvery` samples so rounding cannot accumulate. Offline (`expand`) and live scoring
/// run this same code, so a model scores the same rows the same way on both paths.
///
/// Streaming: one instance per node, fed in time order. Pure value type; not shared.
public struct TemporalFeatures: Sendable {
    /// Feature names of set 1 (window only) and set 2 (window and slow horizon).
    public static let windowNames = ["value", "delta", "mean", "std", "deviation"]
    public static let slowNames = ["trend", "drift"]
    public static func names(slow: Bool) -> [String] { slow ? windowNames + slowNames : windowNames }
    /// Pushes between exact recomputations of the rolling sums.
    static let exactEvery = 1024

    public let metrics: Int
    public let window: Int
    /// Slow horizon in samples, or nil for feature set 1.
    public let slowHorizon: Int?
    public var perMetric: Int { slowHorizon == nil ? 5 : 7 }
    private var ring: [Double]
    private var sums: [Double]
    private var squares: [Double]
    private var slowMean: [Double]
    private var slowTrend: [Double]
    private var previous: [Double]
    private var filled = 0
    private var next = 0
    private var pushes = 0
    public private(set) var count = 0

    public init(metrics: Int, window: Int, slowHorizon: Int? = nil) {
        precondition(metrics > 0 && window > 0 && (slowHorizon ?? 1) > 0)
        self.metrics = metrics
        self.window = window
        self.slowHorizon = slowHorizon
        ring = [Double](repeating: 0, count: metrics * window)
        sums = [Double](repeating: 0, count: metrics)
        squares = sums
        slowMean = sums
        slowTrend = sums
        previous = sums
    }

    /// Bytes this state holds (for the per-node memory report).
    public var byteCount: Int { (ring.count + 5 * metrics) * 8 }

    /// Adds `row` (one value per metric; non-finite values are read as the metric's previous
    /// value, so one NaN cannot poison the rolling sums) and writes `metrics × perMetric`
    /// features into `out`, metric by metric.
    public mutating func push(_ row: [Double], into out: inout [Float]) {
        precondition(row.count == metrics)
        out.removeAll(keepingCapacity: true)
        let replacing = filled == window
        let slot = next
        next = (next + 1) % window
        if !replacing { filled += 1 }
        pushes += 1
        let n = Double(filled)
        let alpha = slowHorizon.map { 2 / (Double($0) + 1) } ?? 0
        let first = count == 0
        count += 1
        for m in 0..<metrics {
            let x = row[m].isFinite ? row[m] : previous[m]
            let index = slot * metrics + m
            let old = ring[index]
            ring[index] = x
            let oldMean = sums[m] / max(1, Double(replacing ? filled : filled - 1))
            if replacing {
                // Welford with the leaving sample removed: M2 += (x − old)(x − mean' + old − mean).
                sums[m] += x - old
                let newMean = sums[m] / n
                squares[m] += (x - old) * (x - newMean + old - oldMean)
            } else {
                sums[m] += x
                let newMean = sums[m] / n
                squares[m] += (x - oldMean) * (x - newMean)
            }
            if squares[m] < 0 { squares[m] = 0 }
            let mean = sums[m] / n
            let delta = first ? 0 : x - previous[m]
            out.append(Float(x))
            out.append(Float(delta))
            out.append(Float(mean))
            out.append(Float((squares[m] / n).squareRoot()))
            out.append(Float(x - mean))
            if let horizon = slowHorizon {
                if first {
                    slowMean[m] = x
                } else {
                    slowMean[m] += alpha * (x - slowMean[m])
                    slowTrend[m] += alpha * (delta - slowTrend[m])
                }
                out.append(Float(slowTrend[m] * Double(horizon)))
                out.append(Float(x - slowMean[m]))
            }
            previous[m] = x
        }
        if pushes >= Self.exactEvery { recompute() }
    }

    /// Recomputes the rolling sums from the ring (bounds the rounding of the running updates).
    private mutating func recompute() {
        pushes = 0
        let n = Double(filled)
        for m in 0..<metrics {
            var sum = 0.0
            for k in 0..<filled { sum += ring[k * metrics + m] }
            let mean = sum / n
            var m2 = 0.0
            for k in 0..<filled {
                let d = ring[k * metrics + m] - mean
                m2 += d * d
            }
            sums[m] = sum
            squares[m] = m2
        }
    }

    /// The features of every row of a time-ordered table, one matrix per metric.
    public static func expand(_ rows: [[Double]], metrics: Int, window: Int, slowHorizon: Int? = nil) -> [FeatureMatrix] {
        var features = TemporalFeatures(metrics: metrics, window: window, slowHorizon: slowHorizon)
        let width = features.perMetric
        var matrices = (0..<metrics).map { _ in FeatureMatrix(columns: width) }
        for m in matrices.indices { matrices[m].reserve(rows: rows.count) }
        var out: [Float] = []
        for row in rows {
            features.push(row, into: &out)
            for m in 0..<metrics {
                matrices[m].appendFloats(out[m * width..<(m + 1) * width])
            }
        }
        return matrices
    }
}

extension FeatureMatrix {
    mutating func appendFloats(_ row: ArraySlice<Float>) {
        precondition(row.count == columns)
        appendRaw(row)
    }
}
