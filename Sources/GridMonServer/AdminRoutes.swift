import GridMonWire

/// The admin port's answers, computed from the server's state: pure, no I/O.
///
/// - `GET /metrics`: Prometheus text format (version 0.0.4) of every counter.
/// - `GET /healthz`: 200 while the process serves.
/// - `GET /readyz`: 200 when the sink can write, else 503.
/// - `GET /api/v1/nodes`: JSON array, one object per node: id, tenant, labels, last seen,
///   durable seq, counts, last sample and last score.
enum AdminRoutes {
    static func respond(to request: HTTPRequestParser.Request, metrics: () -> String, ready: Bool,
                        nodes: () -> [String: NodeState], modelKind: (String, String) -> String = { _, _ in "" }) -> [UInt8] {
        let head = request.method == "HEAD"
        guard request.method == "GET" || head else { return httpResponse(status: 405, body: "only GET and HEAD\n") }
        switch request.path {
        case "/metrics":
            return httpResponse(status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8", body: metrics(), head: head)
        case "/healthz":
            return httpResponse(status: 200, body: "ok\n", head: head)
        case "/readyz":
            return ready ? httpResponse(status: 200, body: "ready\n", head: head)
                : httpResponse(status: 503, body: "not ready: the sink cannot write\n", head: head)
        case "/api/v1/nodes":
            return httpResponse(status: 200, contentType: "application/json", body: nodesJSON(nodes(), modelKind: modelKind), head: head)
        default:
            return httpResponse(status: 404, body: "not found; try /metrics, /healthz, /readyz, /api/v1/nodes\n", head: head)
        }
    }

    static func nodesJSON(_ nodes: [String: NodeState], modelKind: (String, String) -> String = { _, _ in "" }) -> String {
        var out = "["
        for (index, (id, node)) in nodes.sorted(by: { $0.key < $1.key }).enumerated() {
            if index > 0 { out += "," }
            out += "{\"node\":\(json(id)),\"tenant\":\(json(node.tenant)),\"labels\":{"
            out += node.labels.map { "\(json($0.key)):\(json($0.value))" }.joined(separator: ",")
            out += "},\"last_seen_ns\":\(node.lastSeenNs),\"durable_seq\":\(node.durableSeq),"
            out += "\"samples\":\(node.samples),\"anomalies\":\(node.anomalies),\"duplicates\":\(node.duplicates),"
            out += "\"model\":\(json(modelKind(id, node.tenant))),"
            out += "\"last_score\":\(number(node.lastScore)),\"last_sample\":"
            if let s = node.lastSample {
                out += "{\"seq\":\(s.seq),\"timestamp_ns\":\(s.timestampNs),\"cpu\":\(number(s.cpuPercent)),"
                out += "\"memory\":\(number(s.memoryPercent)),\"disk\":\(number(s.diskPercent)),\"load1\":\(number(s.load1))}"
            } else {
                out += "null"
            }
            out += "}"
        }
        return out + "]\n"
    }

    /// A JSON string literal (RFC 8259 §7 escapes).
    static func json(_ string: String) -> String {
        var out = "\""
        for scalar in string.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    /// JSON has no NaN or infinity: those become null.
    static func number(_ value: Double) -> String {
        value.isFinite ? "\(value)" : "null"
    }
}
