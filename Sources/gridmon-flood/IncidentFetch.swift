import Foundation
import GridMonFlood
import GridMonPosix

/// Reads the server's incidents and nodes over its admin port (blocking HTTP/1.0 GETs, bounded
/// in size and time) and scores them with `IncidentScore`.
enum IncidentFetch {
    struct Failure: Error, CustomStringConvertible { let description: String }

    static func score(admin: SocketAddress, fleet: FleetWorkload) throws -> IncidentScore {
        let nodes = try json(admin, "/api/v1/nodes?limit=10000") as? [[String: Any]] ?? []
        var samples: [String: UInt64] = [:]
        for n in nodes {
            if let id = n["node"] as? String, let seq = (n["durable_seq"] as? NSNumber)?.uint64Value { samples[id] = seq }
        }
        let answer = try json(admin, "/api/v1/incidents?limit=1000") as? [String: Any] ?? [:]
        let listed = (answer["open"] as? [[String: Any]] ?? []) + (answer["recent"] as? [[String: Any]] ?? [])
        let seq = { (value: Any?) -> UInt64? in
            guard let ns = (value as? NSNumber)?.int64Value, ns >= FleetWorkload.epochNs else { return nil }
            return UInt64((ns - FleetWorkload.epochNs) / 1_000_000_000)
        }
        let reported = listed.compactMap { i -> IncidentScore.Reported? in
            guard let node = i["node"] as? String, let start = seq(i["start_ns"]), let opened = seq(i["opened_ns"]) else { return nil }
            return IncidentScore.Reported(node: node, startSeq: start, openedSeq: opened, endSeq: seq(i["end_ns"]))
        }
        return IncidentScore(reported: reported, fleet: fleet, samplesPerNode: samples)
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
    static func json(_ address: SocketAddress, _ path: String) throws -> Any {
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
        let request = Array("GET \(path) HTTP/1.0\r\nHost: \(address.host)\r\n\r\n".utf8)
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
