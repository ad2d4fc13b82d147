/// The server's self-metrics: plain counters, exported on /metrics (Prometheus text format).
///
/// Threading: one per reactor thread, summed when exported.
public final class ServerStats {
    public var connectionsAccepted: UInt64 = 0
    public var connectionsClosed: UInt64 = 0
    public var connectionsRejected: UInt64 = 0
    public var framesIn: UInt64 = 0
    public var framesOut: UInt64 = 0
    public var bytesIn: UInt64 = 0
    public var bytesOut: UInt64 = 0
    public var samplesAccepted: UInt64 = 0
    public var samplesDuplicate: UInt64 = 0
    public var anomalies: UInt64 = 0
    public var authFailures: UInt64 = 0
    public var streamsOpened: UInt64 = 0
    public var evictions: UInt64 = 0
    /// Decode errors by `WireError.kind`.
    public var decodeErrors: [String: UInt64] = [:]
    /// Protocol violations and limit hits by reason (e.g. `handshake_timeout`).
    public var violations: [String: UInt64] = [:]

    public init() {}

    /// Prometheus text exposition of every counter.
    public func prometheus(openConnections: Int, nodes: Int) -> String {
        var out = ""
        func counter(_ name: String, _ help: String, _ value: UInt64) {
            out += "# HELP gridmon_\(name) \(help)\n# TYPE gridmon_\(name) counter\ngridmon_\(name) \(value)\n"
        }
        func labelled(_ name: String, _ help: String, _ label: String, _ values: [String: UInt64]) {
            out += "# HELP gridmon_\(name) \(help)\n# TYPE gridmon_\(name) counter\n"
            for (key, value) in values.sorted(by: { $0.key < $1.key }) { out += "gridmon_\(name){\(label)=\"\(key)\"} \(value)\n" }
        }
        counter("connections_accepted_total", "TCP connections accepted.", connectionsAccepted)
        counter("connections_closed_total", "Connections closed, for any reason.", connectionsClosed)
        counter("connections_rejected_total", "Connections refused at accept (limit reached).", connectionsRejected)
        counter("frames_received_total", "Frames decoded from agents.", framesIn)
        counter("frames_sent_total", "Frames sent to agents.", framesOut)
        counter("bytes_received_total", "Bytes read from agents.", bytesIn)
        counter("bytes_sent_total", "Bytes written to agents.", bytesOut)
        counter("samples_accepted_total", "Samples scored and stored.", samplesAccepted)
        counter("samples_duplicate_total", "Resent samples at or below the durable seq (acked, not stored).", samplesDuplicate)
        counter("anomalies_total", "Samples scored as anomalous.", anomalies)
        counter("auth_failures_total", "Hello frames with a bad or missing token.", authFailures)
        counter("streams_opened_total", "Node streams opened.", streamsOpened)
        counter("stream_evictions_total", "Streams taken over by a newer connection of the same node.", evictions)
        labelled("decode_errors_total", "Undecodable input by kind.", "kind", decodeErrors)
        labelled("protocol_violations_total", "Protocol violations and limit hits by reason.", "reason", violations)
        out += "# HELP gridmon_connections_open Connections open now.\n# TYPE gridmon_connections_open gauge\ngridmon_connections_open \(openConnections)\n"
        out += "# HELP gridmon_nodes Nodes known.\n# TYPE gridmon_nodes gauge\ngridmon_nodes \(nodes)\n"
        return out
    }
}
