import Synchronization

/// A Prometheus histogram of durations in seconds: fixed buckets, cumulative on export.
///
/// Threading: `record` and `prometheusText` from any thread (one lock, held for a few adds).
public final class LatencyHistogram: Sendable {
    /// Upper bounds in seconds: 0.5 ms to 10 s covers an fsync and a slow InfluxDB write alike.
    public static let defaultBounds: [Double] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10]
    public let bounds: [Double]
    private let state: Mutex<(buckets: [UInt64], sum: Double, count: UInt64)>

    public init(bounds: [Double] = LatencyHistogram.defaultBounds) {
        self.bounds = bounds
        state = Mutex((Array(repeating: 0, count: bounds.count + 1), 0, 0))
    }

    public func record(_ seconds: Double) {
        let bucket = bounds.firstIndex { seconds <= $0 } ?? bounds.count
        state.withLock { h in
            h.buckets[bucket] += 1
            h.sum += seconds
            h.count += 1
        }
    }

    public var count: UInt64 { state.withLock { $0.count } }

    /// The histogram in Prometheus' text format, as metric `name`.
    public func prometheusText(name: String, help: String) -> String {
        let h = state.withLock { $0 }
        var text = "# HELP \(name) \(help)\n# TYPE \(name) histogram\n"
        var cumulative: UInt64 = 0
        for (i, bound) in bounds.enumerated() {
            cumulative += h.buckets[i]
            text += "\(name)_bucket{le=\"\(bound)\"} \(cumulative)\n"
        }
        return text + "\(name)_bucket{le=\"+Inf\"} \(h.count)\n\(name)_sum \(h.sum)\n\(name)_count \(h.count)\n"
    }
}
