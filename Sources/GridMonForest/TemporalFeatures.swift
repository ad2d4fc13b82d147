/// Turns a stream of metric rows into per-metric temporal features.
///
/// For each metric x at time t, over the last `window` samples (fewer at the start):
/// x, Δx = x − x₍ₜ₋₁₎, rolling mean, rolling standard deviation (population), and x − mean.
/// A level shift, a spike, a stuck metric or a burst of jitter each move one of these even
/// when the raw value stays in its usual range, which a point-wise model cannot see.
///
/// Streaming: one instance per node, fed in time order. Pure value type; not shared.
public struct TemporalFeatures: Sendable {
    public static let perMetric = 5
    public static let names = ["value", "delta", "mean", "std", "deviation"]

    public let metrics: Int
    public let window: Int
    private var ring: [Double]
    private var filled = 0
    private var next = 0
    private var previous: [Double]?

    public init(metrics: Int, window: Int) {
        precondition(metrics > 0 && window > 0)
        self.metrics = metrics
        self.window = window
        ring = [Double](repeating: 0, count: metrics * window)
    }

    /// Adds `row` (one value per metric) and writes `metrics × perMetric` features into `out`,
    /// metric by metric.
    public mutating func push(_ row: [Double], into out: inout [Float]) {
        precondition(row.count == metrics)
        for m in 0..<metrics { ring[next * metrics + m] = row[m] }
        next = (next + 1) % window
        filled = min(filled + 1, window)
        out.removeAll(keepingCapacity: true)
        for m in 0..<metrics {
            var sum = 0.0
            for k in 0..<filled { sum += ring[k * metrics + m] }
            let mean = sum / Double(filled)
            var squares = 0.0
            for k in 0..<filled {
                let d = ring[k * metrics + m] - mean
                squares += d * d
            }
            let x = row[m]
            out.append(Float(x))
            out.append(Float(x - (previous?[m] ?? x)))
            out.append(Float(mean))
            out.append(Float((squares / Double(filled)).squareRoot()))
            out.append(Float(x - mean))
        }
        previous = row
    }

    /// The features of every row of a time-ordered table, one matrix per metric.
    public static func expand(_ rows: [[Double]], metrics: Int, window: Int) -> [FeatureMatrix] {
        var features = TemporalFeatures(metrics: metrics, window: window)
        var matrices = (0..<metrics).map { _ in FeatureMatrix(columns: perMetric) }
        for m in matrices.indices { matrices[m].reserve(rows: rows.count) }
        var out: [Float] = []
        for row in rows {
            features.push(row, into: &out)
            for m in 0..<metrics {
                matrices[m].appendFloats(out[m * perMetric..<(m + 1) * perMetric])
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
