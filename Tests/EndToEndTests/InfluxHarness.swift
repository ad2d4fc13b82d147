import Foundation
import Glibc
import GridMonPosix

/// A real `influxd` (Debian's InfluxDB 1.6.7) on free loopback ports in a temporary directory.
final class InfluxProcess {
    let process = Process()
    let port: UInt16
    let directory: String
    /// Removes `directory` when done (false when reusing another instance's data).
    private let ownsDirectory: Bool

    static var available: Bool { FileManager.default.isExecutableFile(atPath: "/usr/bin/influxd") }

    /// Starts influxd on `port` (a free one when nil) and waits until it answers /ping.
    init(port: UInt16? = nil, directory: String? = nil, authentication: Bool = false) throws {
        self.port = try port ?? freeLoopbackPort()
        self.directory = directory ?? FileManager.default.temporaryDirectory.appendingPathComponent("gridmon-influx-\(UUID())").path
        ownsDirectory = directory == nil
        let rpc = try freeLoopbackPort()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/influxd")
        process.environment = [
            "INFLUXDB_HTTP_BIND_ADDRESS": "127.0.0.1:\(self.port)", "INFLUXDB_BIND_ADDRESS": "127.0.0.1:\(rpc)",
            "INFLUXDB_META_DIR": self.directory + "/meta", "INFLUXDB_DATA_DIR": self.directory + "/data",
            "INFLUXDB_DATA_WAL_DIR": self.directory + "/wal", "INFLUXDB_REPORTING_DISABLED": "true",
            "INFLUXDB_HTTP_LOG_ENABLED": "false", "INFLUXDB_DATA_QUERY_LOG_ENABLED": "false",
            "INFLUXDB_HTTP_AUTH_ENABLED": authentication ? "true" : "false",
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if let status = try? influxRequest(self.port, "GET", "/ping").status, status == 204 { return }
            usleep(50_000)
        }
        throw HarnessError("influxd did not start on port \(self.port)")
    }

    func stop() {
        if process.isRunning { process.terminate(); process.waitUntilExit() }
    }

    deinit {
        stop()
        if ownsDirectory { try? FileManager.default.removeItem(atPath: directory) }
    }

    /// Runs an InfluxQL query against `db`; returns the parsed JSON.
    /// Credentials for queries when authentication is on.
    var credentials = ""

    func query(_ db: String, _ q: String) throws -> [String: Any] {
        let body = try influxRequest(port, "GET", "/query?db=\(percent(db))&q=\(percent(q))\(credentials)").body
        return try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any] ?? [:]
    }

    /// `SELECT count(field) FROM system_metrics [WHERE …]`, or 0 when there is nothing (yet).
    func count(_ db: String, field: String = "cpu", where clause: String = "") throws -> Int {
        let json = try query(db, "SELECT count(\(field)) FROM system_metrics" + (clause.isEmpty ? "" : " WHERE \(clause)"))
        let results = json["results"] as? [[String: Any]]
        let series = results?.first?["series"] as? [[String: Any]]
        let values = series?.first?["values"] as? [[Any]]
        return (values?.first?[1] as? NSNumber)?.intValue ?? 0
    }

    /// The timestamps (ns) of `host`'s points, in order.
    func timestamps(_ db: String, host: String) throws -> [Int64] {
        let q = "SELECT cpu FROM system_metrics WHERE host = '\(host)'"
        let body = try influxRequest(port, "GET", "/query?db=\(percent(db))&epoch=ns&q=\(percent(q))\(credentials)").body
        let json = try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any] ?? [:]
        let series = (json["results"] as? [[String: Any]])?.first?["series"] as? [[String: Any]]
        return (series?.first?["values"] as? [[Any]] ?? []).compactMap { ($0.first as? NSNumber)?.int64Value }
    }

    /// Waits (bounded) until `count` reaches `expected`; returns the last count seen.
    func waitForCount(_ db: String, _ expected: Int, seconds: Double = 30, where clause: String = "") throws -> Int {
        let deadline = Date().addingTimeInterval(seconds)
        var seen = 0
        while Date() < deadline {
            seen = try count(db, where: clause)
            if seen >= expected { return seen }
            usleep(100_000)
        }
        return seen
    }
}

func percent(_ text: String) -> String {
    text.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? text
}

/// One HTTP request to 127.0.0.1:`port` (Connection: close), body as text.
func influxRequest(_ port: UInt16, _ method: String, _ path: String, body: String = "") throws -> (status: Int, body: String) {
    let raw = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
    let response = try httpRequest(SocketAddress(host: "127.0.0.1", port: port), raw)
    // Chunked bodies (InfluxDB's query answers) carry the JSON between size lines.
    let text = response.body
    if let start = text.firstIndex(of: "{"), let end = text.lastIndex(of: "}") { return (response.status, String(text[start...end])) }
    return response
}
