import Foundation
import Glibc
import GridMonWire
import Testing

/// The fleet view (issue #14, item 4) in a real headless browser (Debian's chromium), against
/// the real server with admin tokens: the page loads with every other host unreachable, shows
/// the nodes, and an incident injected afterwards appears on it.
@Suite(.serialized, .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/chromium")
                                 || ProcessInfo.processInfo.environment["GRIDMON_REQUIRE_INTEROP"] == "1"))
struct FleetViewTests {
    /// The page after its scripts ran (`--dump-dom`), or a screenshot of it; every host name
    /// resolves to nothing, so only the loopback server can be reached.
    private func chromium(_ url: String, screenshot: String? = nil) throws -> String {
        var args = ["--headless", "--no-sandbox", "--disable-gpu", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                    "--virtual-time-budget=4000", "--user-data-dir=\(tempPath("chromium"))"]
        if let screenshot { args += ["--window-size=1280,900", "--screenshot=\(screenshot)"] } else { args.append("--dump-dom") }
        // stdout only: chromium logs (D-Bus and GPU complaints) go to stderr.
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/chromium")
        process.arguments = args + [url]
        let output = Pipe()
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = output
        // Not a FileHandle of a file we open: Foundation's Process may close a passed handle's
        // descriptor, and a second close would hit whatever another test opened in between.
        process.standardError = FileHandle.nullDevice
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0 && (screenshot != nil || !text.isEmpty), "chromium exited \(process.terminationStatus) with \(text.count) bytes")
        return text
    }

    @Test func theFleetViewShowsTheNodesAndAnIncidentAsItHappensWithTheAdminToken() throws {
        let tokens = tempPath("admin-tokens")
        try writeSecret("fleet-token *\n", to: tokens)
        let server = try ServerProcess(["--insecure-no-auth", "--admin-tokens-file", tokens, "--incident-close-after", "20"])
        let admin = try #require(server.adminAddress)
        let page = try httpGet(admin, "/")
        #expect(page.status == 200 && page.body.contains("<title>GridMon fleet</title>"))
        // Self-contained: nothing to fetch but its own API (the SVG namespace is a name, not a fetch).
        for external in ["src=", "href=", "@import", "url(", "https://"] { #expect(!page.body.contains(external), "\(external) in the page") }
        #expect(page.body.replacingOccurrences(of: "http://www.w3.org/2000/svg", with: "").contains("http://") == false)
        #expect(try httpGet(admin, "/api/v1/fleet").status == 401)

        let client = try TestClient(server.address)
        _ = try client.hello(node: "web-1", stream: 1)
        _ = try client.send(.hello(Hello(nodeID: "db-1", agentVersion: "test", authToken: "", streamID: 2)))
        _ = try IncidentTests.send(client, (1...400).map(IncidentTests.healthy))
        let nodesRequest = "GET /api/v1/nodes HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer fleet-token\r\n\r\n"
        #expect(eventually(30) { (try? httpRequest(admin, nodesRequest))?.body.contains("\"detector\":\"active\"") ?? false })
        try client.send(.samples(SampleBatch(streamID: 2, samples: [IncidentTests.healthy(1)])))
        _ = try IncidentTests.send(client, (401...700).map(IncidentTests.healthy))

        // Without the token the page asks for one; with it, it lists both nodes.
        let locked = try chromium("http://\(admin)/")
        #expect(locked.contains("token needed (401)"))
        let before = try chromium("http://\(admin)/#token=fleet-token")
        #expect(before.contains(">web-1<") && before.contains(">db-1<"))
        #expect(before.contains("2 nodes") && !before.contains(">incident<"))

        // Trouble on web-1: the open incident and its drivers are on the page.
        let trouble = (701...730).map(IncidentTests.troubled)
        _ = try IncidentTests.send(client, trouble)
        #expect(server.logContains("event=incident_opened"))
        let during = try chromium("http://\(admin)/#token=fleet-token")
        #expect(during.contains(">incident<") && during.contains("1 incident"))
        #expect(during.contains("cpu ↑") || during.contains("memory ↑") || during.contains("net_rx ↑"), "no driver on the page")
        #expect(during.contains("<polyline"), "no sparkline drawn")
        let screenshot = tempPath("fleet-view") + ".png"
        _ = try chromium("http://\(admin)/#token=fleet-token", screenshot: screenshot)
        let size = (try? FileManager.default.attributesOfItem(atPath: screenshot)[.size] as? Int) ?? 0
        #expect(size > 10_000, "screenshot \(screenshot) is \(size) bytes")
        print("fleet view screenshot: \(screenshot)")
    }
}
