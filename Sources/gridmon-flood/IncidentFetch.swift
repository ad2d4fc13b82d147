import Foundation
import GridMonFlood
import GridMonPosix
import Synchronization

/// Reads the server's incidents and nodes over its admin port (blocking HTTP/1.0 GETs, bounded
/// in size and time) and scores them with `IncidentScore`.
///
/// The server lists at most its `--recent-incidents` (1,000 by default) closed incidents and a
/// request at most 1,000, so a long run's early incidents are gone by its end: a collector
/// thread polls every `pollSeconds` during the run and keeps every incident by id (its latest
/// state). A poll whose full list shares no id with the previous poll may have missed some in
/// between; such polls are counted and logged.
final class IncidentFetch: @unchecked Sendable {
    struct Failure: Error, CustomStringConvertible { let description: String }

    static let pollSeconds: UInt32 = 2
    /// Most incidents kept (a bounded run opens far fewer; past it, new ids are dropped and counted).
    static let maxKept = 1_000_000

    let admin: SocketAddress
    /// The admin API's bearer token (`--admin-token`), "" when the API is open.
    let token: String
    private let state = Mutex<(byID: [Int64: IncidentScore.Reported], lastIDs: Set<Int64>, gaps: Int, dropped: Int, stop: Bool)>(
        ([:], [], 0, 0, false))
    private let done = Semaphore()
    private var started = false  // set before the thread exists; read on the caller's thread

    init(admin: SocketAddress, token: String = "") {
        self.admin = admin
        self.token = token
    }

    /// Starts polling on a thread of its own until `finish`.
    func start() {
        started = true
        Thread.detachNewThread { [self] in
            while !state.withLock({ $0.stop }) {
                try? poll()
                sleep(Self.pollSeconds)
            }
            done.signal()
        }
    }

    /// Stops polling, polls once more, and scores everything collected against `fleet`.
    func finish(fleet: FleetWorkload) throws -> IncidentScore {
        state.withLock { $0.stop = true }
        if started { done.wait() }
        try poll()
        let nodes = try Self.json(admin, "/api/v1/nodes?limit=10000", token: token) as? [[String: Any]] ?? []
        var samples: [String: UInt64] = [:]
        for n in nodes {
            if let id = n["node"] as? String, let seq = (n["durable_seq"] as? NSNumber)?.uint64Value { samples[id] = seq }
        }
        let (reported, gaps, dropped) = state.withLock { (Array($0.byID.values), $0.gaps, $0.dropped) }
        if gaps > 0 || dropped > 0 {
            Log.warning("incidents_possibly_missed", ["polls_with_gaps": gaps, "dropped": dropped,
                                                   "note": "more incidents closed between two polls than the server lists"])
        }
        return IncidentScore(reported: reported, fleet: fleet, samplesPerNode: samples)
    }

    /// One GET of the open and recent incidents, merged by id.
    private func poll() throws {
        let answer = try Self.json(admin, "/api/v1/incidents?limit=1000", token: token) as? [String: Any] ?? [:]
        let recent = answer["recent"] as? [[String: Any]] ?? []
        let listed = (answer["open"] as? [[String: Any]] ?? []) + recent
        let seq = { (value: Any?) -> UInt64? in
            guard let ns = (value as? NSNumber)?.int64Value, ns >= FleetWorkload.epochNs else { return nil }
            return UInt64((ns - FleetWorkload.epochNs) / 1_000_000_000)
        }
        var parsed: [(Int64, IncidentScore.Reported)] = []
        for i in listed {
            guard let id = (i["id"] as? NSNumber)?.int64Value, let node = i["node"] as? String, let start = seq(i["start_ns"]),
                  let opened = seq(i["opened_ns"]) else { continue }
            parsed.append((id, IncidentScore.Reported(node: node, startSeq: start, openedSeq: opened, endSeq: seq(i["end_ns"]))))
        }
        state.withLock { s in
            let ids = Set(parsed.map(\.0))
            if recent.count >= 1000 && !s.lastIDs.isEmpty && s.lastIDs.isDisjoint(with: ids) { s.gaps += 1 }
            s.lastIDs = ids
            for (id, r) in parsed {
                if s.byID[id] == nil && s.byID.count >= Self.maxKept { s.dropped += 1; continue }
                s.byID[id] = r
            }
        }
    }

    static func text(_ s: IncidentScore) -> String {
        var out = "incidents         \(s.reported) reported, \(s.falseIncidents) false: "
            + "\(format3(s.falsePer100NodeHours)) per 100 healthy node-hours (\(format3(s.healthyNodeHours)) node-hours at 1 sample/s)\n"
        for kind in s.byKind.keys.sorted() {
            let k = s.byKind[kind]!
            let delay = k.detected > 0 ? "\(format3(Double(k.delaySum) / Double(k.detected))) samples" : "n/a"
            out += "  \(kind.padding(toLength: 15, withPad: " ", startingAt: 0)) incidents found \(k.detected)/\(k.injected), mean delay to open \(delay)\n"
        }
        return out
    }

    static func json(_ s: IncidentScore) -> String {
        let kinds = s.byKind.keys.sorted().map { kind in
            let k = s.byKind[kind]!
            return "\"\(kind)\":{\"injected\":\(k.injected),\"detected\":\(k.detected),\"mean_delay_samples\":"
                + (k.detected > 0 ? "\(Double(k.delaySum) / Double(k.detected))" : "null") + "}"
        }
        return "{\"incidents\":{\"reported\":\(s.reported),\"false\":\(s.falseIncidents),\"healthy_node_hours\":\(s.healthyNodeHours),"
            + "\"false_per_100_node_hours\":\(s.falsePer100NodeHours),\"by_kind\":{\(kinds.joined(separator: ","))}}}"
    }

    /// GET `path` and parse the body as JSON (at most 64 MiB, 10 s).
    static func json(_ address: SocketAddress, _ path: String, token: String = "") throws -> Any {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: errno \(errno)") }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var sin = sockaddr_in()
        sin.sin_family = sa_family_t(AF_INET)
        sin.sin_port = address.port.bigEndian
        guard inet_pton(AF_INET, address.host, &sin.sin_addr) == 1 else { throw Failure(description: "bad host \(address.host)") }
        let connected = withUnsafePointer(to: &sin) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw Failure(description: "connect \(address): errno \(errno)") }
        let authorization = token.isEmpty ? "" : "Authorization: Bearer \(token)\r\n"
        let request = Array("GET \(path) HTTP/1.0\r\nHost: \(address.host)\r\n\(authorization)\r\n".utf8)
        guard request.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, 0) }) == request.count else {
            throw Failure(description: "send: errno \(errno)")
        }
        var response: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while response.count < 64 << 20 {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            response += chunk[..<n]
        }
        let text = String(decoding: response, as: UTF8.self)
        guard text.hasPrefix("HTTP/1.1 200") || text.hasPrefix("HTTP/1.0 200"), let split = text.range(of: "\r\n\r\n") else {
            throw Failure(description: "GET \(path): \(text.prefix(80))")
        }
        return try JSONSerialization.jsonObject(with: Data(text[split.upperBound...].utf8))
    }
}
