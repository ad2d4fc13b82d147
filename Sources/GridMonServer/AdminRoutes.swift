import GridMonCore
import GridMonDetect
import GridMonWire

/// What the nodes API says about how a node is judged.
struct NodeDetail {
    /// `node`, `tenant`, `default` (forest scorer), `own`, `configured`, `none` (temporal), `static`.
    var model: String
    /// `learning`, `active` or `off` (temporal scorer only).
    var detector: String? = nil
    var detectorMetrics: Int? = nil
    var detectorBytes: Int? = nil
}

/// The admin port's answers, computed from the server's state: pure, no I/O.
///
/// - `GET /metrics`: Prometheus text format (version 0.0.4) of every counter.
/// - `GET /healthz`: 200 while the process serves.
/// - `GET /readyz`: 200 when the sink can take and deliver samples, else 503 with the reason.
/// - `GET /api/v1/nodes`: JSON array, one object per node: id, tenant, labels, last seen,
///   durable seq, counts, last sample and last score; sorted by (tenant, node) and paged:
///   `limit` (default 1000, at most 10000), `after_tenant` and `after_node` (the last node of
///   the previous page), `tenant` (one tenant only). A page, not every node: 100 k nodes as
///   one answer were 17.9 MB built on a reactor thread (issue #10, defect 10).
///   With live detection each node says `detector` (`learning`, `active`, `off`), how many
///   metrics it models and the bytes its detector holds.
/// - `GET /api/v1/incidents`: open incidents and the most recent closed ones (`IncidentRoutes`).
/// - `GET /api/v1/fleet`: nodes with state and score trail, and incidents (`FleetRoutes`).
/// - `GET /`: the fleet view, one self-contained HTML page reading `/api/v1/fleet` (`FleetPage`).
///
/// With `--admin-tokens-file` every `/api/v1/` path needs a bearer token (`AdminAuth`): 401
/// without a known one, and a tenant's token sees its tenant only (403 for another's).
enum AdminRoutes {
    static let defaultPage = 1000
    static let maxPage = 10_000

    static func respond(to request: HTTPRequestParser.Request, metrics: () -> String, notReady: String?,
                        nodes: NodeTable, incidents: IncidentBook? = nil, auth: AdminAuth = .open,
                        onRefused: (Int) -> Void = { _ in }, nowNs: Int64 = 0,
                        detail: (NodeKey) -> NodeDetail = { _ in NodeDetail(model: "") }) -> [UInt8] {
        let head = request.method == "HEAD"
        guard request.method == "GET" || head else { return httpResponse(status: 405, body: "only GET and HEAD\n") }
        var query = parseQuery(request.query)
        if request.path.hasPrefix("/api/") {
            let allowed = auth.scope(of: request).flatMap { AdminAuth.tenant(asked: query["tenant"], scope: $0) }
            switch allowed {
            case .success(let tenant): query["tenant"] = tenant
            case .failure(let refusal):
                onRefused(refusal.status)
                return httpResponse(status: refusal.status, body: refusal.message + "\n", head: head,
                                    headers: refusal.status == 401 ? [("WWW-Authenticate", "Bearer realm=\"gridmon\"")] : [])
            }
        }
        switch request.path {
        case "/", "/index.html":
            return httpResponse(status: 200, contentType: "text/html; charset=utf-8", body: FleetPage.html, head: head,
                                headers: [("Content-Security-Policy", FleetPage.contentSecurityPolicy), ("Cache-Control", "no-cache")])
        case "/api/v1/fleet":
            return FleetRoutes.respond(query, nodes: nodes, incidents: incidents, nowNs: nowNs, head: head) { detail($0).detector }
        case "/metrics":
            return httpResponse(status: 200, contentType: "text/plain; version=0.0.4; charset=utf-8", body: metrics(), head: head)
        case "/healthz":
            return httpResponse(status: 200, body: "ok\n", head: head)
        case "/readyz":
            return notReady.map { httpResponse(status: 503, body: "not ready: \($0)\n", head: head) }
                ?? httpResponse(status: 200, body: "ready\n", head: head)
        case "/api/v1/nodes":
            guard let limit = query["limit"].map({ Int($0) }) ?? defaultPage, (1...maxPage).contains(limit) else {
                return httpResponse(status: 400, body: "limit must be 1...\(maxPage)\n", head: head)
            }
            let after = query["after_tenant"].map { NodeKey(tenant: $0, node: query["after_node"] ?? "") }
            let page = nodePage(nodes, tenant: query["tenant"], after: after, limit: limit)
            return httpResponse(status: 200, contentType: "application/json", body: nodesJSON(page, detail: detail), head: head)
        case "/api/v1/incidents":
            guard let incidents else { return httpResponse(status: 404, body: "incidents need --scorer temporal\n", head: head) }
            return IncidentRoutes.respond(query, book: incidents, head: head)
        default:
            return httpResponse(status: 404, body: "not found; try /, /metrics, /healthz, /readyz, /api/v1/nodes, /api/v1/incidents, /api/v1/fleet\n", head: head)
        }
    }

    /// Up to `limit` nodes after `after` in (tenant, node) order, with their states.
    static func nodePage(_ nodes: NodeTable, tenant: String?, after: NodeKey?, limit: Int) -> [(NodeKey, NodeState)] {
        var keys = nodes.keys(tenant: tenant)
        if let after { keys.removeAll { !(after < $0) } }
        keys.sort()
        return keys.prefix(limit).compactMap { key in nodes[key].map { (key, $0) } }
    }

    /// `a=1&b=2` → ["a": "1", "b": "2"], percent-decoded.
    static func parseQuery(_ query: String) -> [String: String] {
        var out: [String: String] = [:]
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let key = parts.first.flatMap({ percentDecoded($0) }) else { continue }
            out[key] = parts.count > 1 ? percentDecoded(parts[1]) ?? "" : ""
        }
        return out
    }

    static func percentDecoded(_ text: Substring) -> String? {
        var bytes: [UInt8] = []
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "%") {
                guard let high = iterator.next(), let low = iterator.next(),
                      let value = UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16) else { return nil }
                bytes.append(value)
            } else {
                bytes.append(byte == UInt8(ascii: "+") ? UInt8(ascii: " ") : byte)
            }
        }
        return String(validating: bytes, as: UTF8.self)
    }

    static func nodesJSON(_ nodes: [(NodeKey, NodeState)], detail: (NodeKey) -> NodeDetail = { _ in NodeDetail(model: "") }) -> String {
        var out = "["
        for (index, (key, node)) in nodes.enumerated() {
            let id = key.node
            if index > 0 { out += "," }
            out += "{\"node\":\(json(id)),\"tenant\":\(json(node.tenant)),\"labels\":{"
            out += node.labels.map { "\(json($0.key)):\(json($0.value))" }.joined(separator: ",")
            out += "},\"last_seen_ns\":\(node.lastSeenNs),\"durable_seq\":\(node.durableSeq),"
            out += "\"samples\":\(node.samples),\"anomalies\":\(node.anomalies),\"duplicates\":\(node.duplicates),"
            let judged = detail(key)
            out += "\"model\":\(json(judged.model)),"
            if let state = judged.detector {
                out += "\"detector\":\(json(state)),\"detector_metrics\":\(judged.detectorMetrics ?? 0),\"detector_bytes\":\(judged.detectorBytes ?? 0),"
            }
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
    static func json(_ string: String) -> String { JSONText.quoted(string) }

    /// JSON has no NaN or infinity: those become null.
    static func number(_ value: Double) -> String {
        value.isFinite ? "\(value)" : "null"
    }
}
