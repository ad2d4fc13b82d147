import Foundation
import Glibc
import GridMonPosix

/// A webhook receiver the test owns: Python's http.server on a loopback port, recording every
/// POST to `/hook` (path, body, and whether its GridMon signature checks out) as JSON lines;
/// any other path gets 404.
final class WebhookReceiver {
    let port: UInt16
    let logPath: String
    private let process = Process()

    private static let script = """
        import hashlib, hmac, json, sys, time
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        port, log, secret = int(sys.argv[1]), sys.argv[2], sys.argv[3].encode()
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path != "/hook":
                    # Only the webhook's path: another test's server that picked this free
                    # port (a shipper expecting InfluxDB) must not see its writes succeed.
                    self.send_response(404); self.send_header("Content-Length", "0"); self.end_headers(); return
                ts = self.headers.get("X-GridMon-Timestamp", "")
                sig = self.headers.get("X-GridMon-Signature", "")
                want = "sha256=" + hmac.new(secret, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
                fresh = ts.isdigit() and abs(time.time() - int(ts)) < 300
                valid = bool(secret) and hmac.compare_digest(sig, want) and fresh
                with open(log, "a") as f:
                    f.write(json.dumps({"path": self.path, "valid": valid, "body": body.decode()}) + "\\n")
                self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
            def log_message(self, *args): pass
        ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
        """

    /// Starts listening on `port` (a free one when nil); `secret` checks signatures ("" = none).
    init(port: UInt16? = nil, secret: String = "", logPath: String? = nil) throws {
        self.port = try port ?? freeLoopbackPort()
        self.logPath = logPath ?? tempPath("webhook") + ".jsonl"
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = ["-c", Self.script, String(self.port), self.logPath, secret]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Up once it accepts a connection.
        for _ in 0..<100 {
            if (try? TestClient(SocketAddressText.loopback(self.port), sendPreface: false)) != nil { return }
            usleep(50_000)
        }
        throw HarnessError("webhook receiver did not start")
    }

    deinit { stop() }

    /// SIGKILL: a child may inherit a blocked SIGTERM from the test process's threads.
    func stop() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
    }

    /// Every POST so far: (valid signature, payload object).
    var posts: [(valid: Bool, payload: [String: Any])] {
        guard let text = try? String(contentsOfFile: logPath, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            guard let record = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let body = record["body"] as? String,
                  let payload = try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any] else { return nil }
            return (record["valid"] as? Bool ?? false, payload)
        }
    }

    /// The `id` of each webhook payload received, in order (`<alert>-<event>`).
    var ids: [String] { posts.compactMap { $0.payload["id"] as? String } }
}

/// A real Alertmanager (Debian's prometheus-alertmanager) on a free loopback port, clustering
/// off, with a route to nowhere: the test reads its alerts back through its API.
final class AlertmanagerProcess {
    static let binary = "/usr/bin/prometheus-alertmanager"
    static var available: Bool { FileManager.default.isExecutableFile(atPath: binary) }
    let port: UInt16
    private let directory = tempPath("alertmanager")
    private let process = Process()

    init() throws {
        port = try freeLoopbackPort()
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let config = directory + "/alertmanager.yml"
        try "route:\n  receiver: nowhere\nreceivers:\n  - name: nowhere\n".write(toFile: config, atomically: true, encoding: .utf8)
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = ["--config.file=\(config)", "--storage.path=\(directory)/data", "--web.listen-address=127.0.0.1:\(port)",
                             "--cluster.listen-address="]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        for _ in 0..<200 {
            if (try? runTool("/usr/bin/curl", ["-sf", "http://127.0.0.1:\(port)/-/ready"]))?.status == 0 { return }
            usleep(50_000)
        }
        throw HarnessError("alertmanager did not start on port \(port)")
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// `GET /api/v2/alerts` (active, silenced, inhibited and unprocessed alerts; resolved ones
    /// are not listed).
    func alerts() throws -> [[String: Any]] {
        let answer = try runTool("/usr/bin/curl", ["-sf", "http://127.0.0.1:\(port)/api/v2/alerts"])
        guard answer.status == 0 else { throw HarnessError("alertmanager: curl exit \(answer.status)") }
        return try JSONSerialization.jsonObject(with: Data(answer.output.utf8)) as? [[String: Any]] ?? []
    }
}

enum SocketAddressText {
    static func loopback(_ port: UInt16) -> SocketAddress { SocketAddress(parsing: "127.0.0.1:\(port)")! }
}
