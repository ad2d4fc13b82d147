import Foundation
import GridMonCore
import GridMonDetect

/// `GET /api/v1/fleet`: what the fleet view shows, in one answer (issue #14, item 4): every
/// node (up to `limit`, default 500, at most 10,000; nodes in trouble first) with its state,
/// current CPU, memory and disk, last score and score trail, and the open and most recent
/// incidents. Query: `tenant` (one tenant; a tenant's admin token gets only its own), `limit`.
/// Pure: answers from snapshots of the node table and the incident book.
enum FleetRoutes {
    static let defaultLimit = 500
    static let maxLimit = 10_000
    /// A node not heard from for this long is `silent` (an agent sends every second by
    /// default, and pings within a keepalive interval of 30 s).
    static let silentAfterNs: Int64 = 60_000_000_000

    struct Node: Encodable {
        var node: String
        var tenant: String
        /// `incident`, `silent`, `learning` or `healthy`.
        var state: String
        var cpu: Double?
        var memory: Double?
        var disk: Double?
        var score: Double
        var lastSeenSecondsAgo: Double
        /// Highest score per 5 s, oldest first, over the last 5 minutes (null: no sample).
        var trail: [Double?]
    }

    struct Answer: Encodable {
        var generatedNs: Int64
        var totalNodes: Int
        var states: [String: Int]
        var nodes: [Node]
        var open: [IncidentRoutes.View]
        var recent: [IncidentRoutes.View]
    }

    /// States by urgency: the order nodes are listed in.
    static let names = ["incident", "silent", "learning", "healthy"]

    static func respond(_ query: [String: String], nodes: NodeTable, incidents: IncidentBook?, nowNs: Int64, head: Bool,
                        detector: (NodeKey) -> String?) -> [UInt8] {
        guard let limit = query["limit"].map({ Int($0) }) ?? defaultLimit, (1...maxLimit).contains(limit) else {
            return httpResponse(status: 400, body: "limit must be 1...\(maxLimit)\n", head: head)
        }
        let tenant = query["tenant"]
        let (open, recent) = incidents?.list(tenant: tenant, limit: 20) ?? ([], [])
        let troubled = Set(open.map(\.key))
        // Every node is ranked (the states are counted over all), but only the `limit` shown
        // are turned into answers with their trails: this runs on a reactor thread.
        var states: [String: Int] = [:]
        var ranked: [(rank: Int, key: NodeKey, state: NodeState)] = []
        for key in nodes.keys(tenant: tenant) {
            guard let state = nodes[key] else { continue }
            let rank = troubled.contains(key) ? 0 : nowNs - state.lastSeenNs > silentAfterNs ? 1 : detector(key) == "learning" ? 2 : 3
            states[names[rank], default: 0] += 1
            ranked.append((rank, key, state))
        }
        ranked.sort { ($0.rank, $0.key) < ($1.rank, $1.key) }
        let shown = ranked.prefix(limit).map { rank, key, state in
            let sample = state.lastSample
            return Node(node: key.node, tenant: key.tenant, state: names[rank], cpu: finite(sample?.cpuPercent),
                        memory: finite(sample?.memoryPercent), disk: finite(sample?.diskPercent),
                        score: state.lastScore.isFinite ? state.lastScore : 0,
                        lastSeenSecondsAgo: Double(max(0, nowNs - state.lastSeenNs)) / 1e9, trail: state.trail.scores(nowNs: nowNs))
        }
        let answer = Answer(generatedNs: nowNs, totalNodes: ranked.count, states: states, nodes: shown,
                            open: open.map(IncidentRoutes.View.init), recent: recent.map(IncidentRoutes.View.init))
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        guard let data = try? encoder.encode(answer) else {
            return httpResponse(status: 500, body: "cannot encode the fleet\n", head: head)
        }
        return httpResponse(status: 200, contentType: "application/json", body: String(decoding: data, as: UTF8.self) + "\n", head: head)
    }

    private static func finite(_ value: Double?) -> Double? {
        guard let value, value.isFinite else { return nil }
        return (value * 10).rounded() / 10
    }
}
