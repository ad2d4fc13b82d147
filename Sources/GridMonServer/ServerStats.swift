import GridMonCore
import Synchronization

/// The server's self-metrics, exported on /metrics in Prometheus text format.
///
/// Threading: one instance per reactor thread, so the hot counters are written by one thread
/// and read (summed) by the admin port from another: relaxed atomics, no false sharing
/// between threads. Rare labelled counts (errors by kind) sit behind a mutex.
public final class ServerStats: Sendable {
    public let connectionsAccepted = Atomic<UInt64>(0)
    public let connectionsClosed = Atomic<UInt64>(0)
    public let connectionsRejected = Atomic<UInt64>(0)
    public let framesIn = Atomic<UInt64>(0)
    public let framesOut = Atomic<UInt64>(0)
    public let bytesIn = Atomic<UInt64>(0)
    public let bytesOut = Atomic<UInt64>(0)
    public let samplesAccepted = Atomic<UInt64>(0)
    public let samplesDuplicate = Atomic<UInt64>(0)
    public let anomalies = Atomic<UInt64>(0)
    public let authFailures = Atomic<UInt64>(0)
    public let streamsOpened = Atomic<UInt64>(0)
    public let evictions = Atomic<UInt64>(0)
    public let backpressurePauses = Atomic<UInt64>(0)
    /// Decode errors by `WireError.kind`; protocol violations and limit hits by reason.
    private let labelled = Mutex<(decode: [String: UInt64], violations: [String: UInt64])>(([:], [:]))

    public init() {}

    public func decodeError(_ kind: String) { labelled.withLock { $0.decode[kind, default: 0] += 1 } }
    public func violation(_ reason: String) { labelled.withLock { $0.violations[reason, default: 0] += 1 } }
    public var decodeErrors: [String: UInt64] { labelled.withLock { $0.decode } }
    public var violations: [String: UInt64] { labelled.withLock { $0.violations } }

    /// Prometheus text exposition of the sum of `all` (one per reactor thread).
    public static func prometheus(_ all: [ServerStats], openConnections: Int, nodes: Int, sinkQueued: Int = 0) -> String {
        var out = ""
        func counter(_ name: String, _ help: String, _ value: (ServerStats) -> UInt64) {
            out += "# HELP gridmon_\(name) \(help)\n# TYPE gridmon_\(name) counter\n"
            out += "gridmon_\(name) \(all.reduce(0) { $0 + value($1) })\n"
        }
        func labelled(_ name: String, _ help: String, _ label: String, _ values: (ServerStats) -> [String: UInt64]) {
            out += "# HELP gridmon_\(name) \(help)\n# TYPE gridmon_\(name) counter\n"
            let sum = all.map(values).reduce(into: [String: UInt64]()) { sum, one in sum.merge(one, uniquingKeysWith: +) }
            for (key, value) in sum.sorted(by: { $0.key < $1.key }) { out += "gridmon_\(name){\(label)=\"\(key)\"} \(value)\n" }
        }
        counter("connections_accepted_total", "TCP connections accepted.", { $0.connectionsAccepted.value })
        counter("connections_closed_total", "Connections closed, for any reason.", { $0.connectionsClosed.value })
        counter("connections_rejected_total", "Connections refused at accept (limit reached).", { $0.connectionsRejected.value })
        counter("frames_received_total", "Frames decoded from agents.", { $0.framesIn.value })
        counter("frames_sent_total", "Frames sent to agents.", { $0.framesOut.value })
        counter("bytes_received_total", "Bytes read from agents.", { $0.bytesIn.value })
        counter("bytes_sent_total", "Bytes written to agents.", { $0.bytesOut.value })
        counter("samples_accepted_total", "Samples scored and stored.", { $0.samplesAccepted.value })
        counter("samples_duplicate_total", "Resent samples at or below the durable seq (acked, not stored).", { $0.samplesDuplicate.value })
        counter("anomalies_total", "Samples scored as anomalous.", { $0.anomalies.value })
        counter("auth_failures_total", "Hello frames with a bad or missing token.", { $0.authFailures.value })
        counter("streams_opened_total", "Node streams opened.", { $0.streamsOpened.value })
        counter("stream_evictions_total", "Streams taken over by a newer connection of the same node.", { $0.evictions.value })
        counter("backpressure_pauses_total", "Times reading stopped because the sink queue passed its high-water mark.", { $0.backpressurePauses.value })
        labelled("decode_errors_total", "Undecodable input by kind.", "kind", { $0.decodeErrors })
        labelled("protocol_violations_total", "Protocol violations and limit hits by reason.", "reason", { $0.violations })
        out += "# HELP gridmon_connections_open Connections open now.\n# TYPE gridmon_connections_open gauge\ngridmon_connections_open \(openConnections)\n"
        out += "# HELP gridmon_sink_queue_samples Samples accepted and not yet written by the sink.\n# TYPE gridmon_sink_queue_samples gauge\ngridmon_sink_queue_samples \(sinkQueued)\n"
        out += "# HELP gridmon_nodes Nodes known.\n# TYPE gridmon_nodes gauge\ngridmon_nodes \(nodes)\n"
        return out
    }
}
