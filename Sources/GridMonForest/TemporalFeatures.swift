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
    /// Per metric, `State.width` values side by side: the running sum and sum of squared
    /// deviations, the slow mean and trend, the previous value. One array, so that `push`
    /// walks three buffers (ring, state, output) instead of checking seven arrays' uniqueness
    /// and bounds per value: it runs for every sample the server scores.
    private var state: [Double]
    private enum State {
        static let width = 5
        static let sum = 0, squares = 1, slowMean = 2, slowTrend = 3, previous = 4
    }
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
        state = [Double](repeating: 0, count: metrics * State.width)
    }

    /// Bytes this state holds (for the per-node memory report).
    public var byteCount: Int { (ring.count + state.count) * 8 }

    /// Adds `row` (one value per metric; non-finite values are read as the metric's previous
    /// value, so one NaN cannot poison the rolling sums) and writes `metrics × perMetric`
    /// features into `out`, metric by metric.
    public mutating func push(_ row: [Double], into out: inout [Float]) {
        precondition(row.count == metrics)
        let replacing = filled == window
        let slot = next
        next = (next + 1) % window
        if !replacing { filled += 1 }
        pushes += 1
        let n = Double(filled)
        let oldCount = max(1, Double(replacing ? filled : filled - 1))
        let horizon = slowHorizon
        let alpha = horizon.map { 2 / (Double($0) + 1) } ?? 0
        let first = count == 0
        count += 1
        let metrics = self.metrics
        let width = perMetric
        out.removeAll(keepingCapacity: true)
        out.append(contentsOf: repeatElement(0, count: metrics * width))
        row.withUnsafeBufferPointer { row in
            ring.withUnsafeMutableBufferPointer { ring in
                state.withUnsafeMutableBufferPointer { state in
                    out.withUnsafeMutableBufferPointer { out in
                        for m in 0..<metrics {
                            let at = m * State.width
                            let x = row[m].isFinite ? row[m] : state[at + State.previous]
                            let index = slot * metrics + m
                            let old = ring[index]
                            ring[index] = x
                            let oldMean = state[at + State.sum] / oldCount
                            if replacing {
                                // Welford with the leaving sample removed: M2 += (x − old)(x − mean' + old − mean).
                                state[at + State.sum] += x - old
                                let newMean = state[at + State.sum] / n
                                state[at + State.squares] += (x - old) * (x - newMean + old - oldMean)
                            } else {
                                state[at + State.sum] += x
                                let newMean = state[at + State.sum] / n
                                state[at + State.squares] += (x - oldMean) * (x - newMean)
                            }
                            if state[at + State.squares] < 0 { state[at + State.squares] = 0 }
                            let mean = state[at + State.sum] / n
                            let delta = first ? 0 : x - state[at + State.previous]
                            let o = m * width
                            out[o] = Float(x)
                            out[o + 1] = Float(delta)
                            out[o + 2] = Float(mean)
                            out[o + 3] = Float((state[at + State.squares] / n).squareRoot())
                            out[o + 4] = Float(x - mean)
                            if let horizon {
                                if first {
                                    state[at + State.slowMean] = x
                                } else {
                                    state[at + State.slowMean] += alpha * (x - state[at + State.slowMean])
                                    state[at + State.slowTrend] += alpha * (delta - state[at + State.slowTrend])
                                }
                                out[o + 5] = Float(state[at + State.slowTrend] * Double(horizon))
                                out[o + 6] = Float(x - state[at + State.slowMean])
                            }
                            state[at + State.previous] = x
                        }
                    }
                }
            }
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
            state[m * State.width + State.sum] = sum
            state[m * State.width + State.squares] = m2
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
