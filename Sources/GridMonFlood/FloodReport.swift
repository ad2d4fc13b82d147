import Histogram

/// The final report of a flood run, as text for people and JSON for scripts.
public struct FloodReport: Sendable {
    public var samplesSent: UInt64
    public var samplesAcked: UInt64
    public var samplesResent: UInt64
    public var framesSent: UInt64
    public var seconds: Double
    public var samplesPerSecond: Double
    /// Ack latency percentiles in microseconds.
    public var latency: [(label: String, micros: UInt64)]
    /// The same for frames sent `latencyAfterSeconds` or more after the start (empty when 0).
    public var laterLatency: [(label: String, micros: UInt64)]
    /// Samples counted in `laterLatency`.
    public var laterLatencySamples: UInt64
    public var latencyAfterSeconds: Double
    public var reconnects: UInt64
    public var anomaliesReported: UInt64
    public var errors: [String: UInt64]
    public var detection: DetectionTally?
    /// TLS handshakes and their mean client-side wall time in microseconds.
    public var tls: (handshakes: UInt64, meanMicros: Double)?

    public init(stats: FloodStats, elapsedNs: UInt64, latencyAfterNs: UInt64 = 0) {
        latencyAfterSeconds = Double(latencyAfterNs) / 1e9
        samplesSent = stats.samplesSent
        samplesAcked = stats.samplesAcked
        samplesResent = stats.samplesResent
        framesSent = stats.framesSent
        seconds = Double(elapsedNs) / 1e9
        samplesPerSecond = seconds > 0 ? Double(stats.samplesAcked) / seconds : 0
        func percentiles(_ h: Histogram<UInt64>) -> [(label: String, micros: UInt64)] {
            h.totalCount == 0 ? [] : [
                ("p50", h.valueAtPercentile(50)), ("p90", h.valueAtPercentile(90)), ("p99", h.valueAtPercentile(99)),
                ("p99.9", h.valueAtPercentile(99.9)), ("max", h.max),
            ]
        }
        latency = percentiles(stats.latencyMicros)
        laterLatency = latencyAfterNs > 0 ? percentiles(stats.laterLatencyMicros) : []
        laterLatencySamples = stats.laterLatencyMicros.totalCount
        reconnects = stats.reconnects
        anomaliesReported = stats.anomaliesReported
        errors = stats.errors
        detection = stats.detection
        if stats.tlsHandshakes > 0 {
            tls = (stats.tlsHandshakes, Double(stats.tlsHandshakeNs) / Double(stats.tlsHandshakes) / 1e3)
        }
    }

    public var text: String {
        var out = "samples sent      \(samplesSent)\nsamples acked     \(samplesAcked)\nsamples resent    \(samplesResent)\nframes sent       \(framesSent)\n"
        out += "elapsed           \(format(seconds)) s\nthroughput        \(format(samplesPerSecond)) samples/s (acked)\n"
        out += "ack latency       " + (latency.isEmpty ? "none recorded" : latency.map { "\($0.label) \(micros($0.micros))" }.joined(separator: "  ")) + "\n"
        if latencyAfterSeconds > 0 {
            out += "  after \(format(latencyAfterSeconds)) s     " + (laterLatency.isEmpty ? "none recorded" : laterLatency.map { "\($0.label) \(micros($0.micros))" }.joined(separator: "  ")) + "\n"
        }
        out += "anomalies         \(anomaliesReported)\nreconnects        \(reconnects)\n"
        if let tls {
            out += "tls handshakes    \(tls.handshakes) (mean \(format(tls.meanMicros)) µs, connect to established)\n"
        }
        out += "errors            " + (errors.isEmpty ? "none" : errors.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")) + "\n"
        if let d = detection {
            out += "detection         precision \(format(d.precision))  recall \(format(d.recall))  F1 \(format(d.f1))  (samples: TP \(d.truePositives) FP \(d.falsePositives) FN \(d.falseNegatives))\n"
            for (kind, t) in d.byType.sorted(by: { $0.key < $1.key }) {
                let delay = t.detected > 0 ? "\(format(Double(t.delaySum) / Double(t.detected))) samples" : "-"
                out += "  \(kind + String(repeating: " ", count: max(0, 15 - kind.count))) detected \(t.detected)/\(t.incidents), mean delay \(delay)\n"
            }
        }
        return out
    }

    public var json: String {
        var fields = [
            "\"samples_sent\":\(samplesSent)", "\"samples_acked\":\(samplesAcked)", "\"samples_resent\":\(samplesResent)", "\"frames_sent\":\(framesSent)",
            "\"seconds\":\(format(seconds))", "\"samples_per_second\":\(format(samplesPerSecond))",
            "\"reconnects\":\(reconnects)", "\"anomalies\":\(anomaliesReported)",
        ]
        fields.append("\"ack_latency_us\":{" + latency.map { "\"\($0.label)\":\($0.micros)" }.joined(separator: ",") + "}")
        if latencyAfterSeconds > 0 {
            fields.append("\"latency_after_s\":\(format(latencyAfterSeconds)),\"latency_after_samples\":\(laterLatencySamples)")
            fields.append("\"ack_latency_after_us\":{" + laterLatency.map { "\"\($0.label)\":\($0.micros)" }.joined(separator: ",") + "}")
        }
        if let tls {
            fields.append("\"tls\":{\"handshakes\":\(tls.handshakes),\"mean_us\":\(format(tls.meanMicros))}")
        }
        fields.append("\"errors\":{" + errors.sorted { $0.key < $1.key }.map { "\"\($0.key)\":\($0.value)" }.joined(separator: ",") + "}")
        if let d = detection {
            let types = d.byType.sorted { $0.key < $1.key }.map { kind, t in
                "\"\(kind)\":{\"incidents\":\(t.incidents),\"detected\":\(t.detected),\"mean_delay_samples\":\(t.detected > 0 ? format(Double(t.delaySum) / Double(t.detected)) : "null")}"
            }
            fields.append("\"detection\":{\"precision\":\(format(d.precision)),\"recall\":\(format(d.recall)),\"f1\":\(format(d.f1)),"
                + "\"true_positives\":\(d.truePositives),\"false_positives\":\(d.falsePositives),\"false_negatives\":\(d.falseNegatives),"
                + "\"by_incident\":{" + types.joined(separator: ",") + "}}")
        }
        return "{" + fields.joined(separator: ",") + "}"
    }

    private func format(_ value: Double) -> String { String(Double(Int(value * 1000)) / 1000) }
    private func micros(_ value: UInt64) -> String {
        value >= 1000 ? "\(format(Double(value) / 1000)) ms" : "\(value) µs"
    }
}
