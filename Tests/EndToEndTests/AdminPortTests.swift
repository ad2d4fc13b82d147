import Foundation
import Glibc
import GridMonWire
import Testing

/// The admin HTTP port of the real server.
@Suite(.serialized) struct AdminPortTests {
    @Test func healthReadinessAndNotFound() throws {
        let server = try ServerProcess()
        let admin = try #require(server.adminAddress)
        #expect(try httpGet(admin, "/healthz") == (200, "ok\n"))
        #expect(try httpGet(admin, "/readyz").status == 200)
        #expect(try httpGet(admin, "/nope").status == 404)
        #expect(try httpRequest(admin, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n").status == 405)
        #expect(try httpRequest(admin, "GET /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello").status == 413)
        #expect(try httpRequest(admin, "garbage\r\n\r\n").status == 400)
        let huge = "GET / HTTP/1.1\r\n" + String(repeating: "X-Pad: \(String(repeating: "a", count: 100))\r\n", count: 200) + "\r\n"
        #expect(try httpRequest(admin, huge).status == 431)
    }

    @Test func metricsCountWhatHappened() throws {
        let server = try ServerProcess(["--insecure-no-auth", "--scorer", "static"])
        let admin = try #require(server.adminAddress)
        let client = try TestClient(server.address)
        _ = try client.hello(node: "m1", stream: 1)
        try client.send(batch(1, 1...10), batch(1, 5...12, cpu: 99))
        var durable: UInt64 = 0
        while durable < 12, case .ack(let ack)? = try client.receive() { durable = ack.durableSeq }
        let bad = try TestClient(server.address)
        try bad.send([0, 0x80, 0, 0, 0])
        _ = try bad.drainUntilClosed()

        let text = try httpGet(admin, "/metrics").body
        #expect(metric(text, "gridmon_samples_accepted_total") == 12)
        #expect(metric(text, "gridmon_samples_duplicate_total") == 6)
        #expect(metric(text, "gridmon_anomalies_total") == 2)  // seqs 11 and 12 at 99 % CPU
        #expect(metric(text, "gridmon_decode_errors_total{kind=\"oversize_frame\"}") == 1)
        #expect(metric(text, "gridmon_streams_opened_total") == 1)
        #expect(metric(text, "gridmon_nodes") == 1)
        #expect(text.contains("# TYPE gridmon_frames_received_total counter"))
    }

    @Test func nodesAreListedAsJSON() throws {
        let server = try ServerProcess(["--insecure-no-auth", "--scorer", "static"])
        let admin = try #require(server.adminAddress)
        let client = try TestClient(server.address)
        try client.send(.hello(Hello(nodeID: "db \"primary\"", labels: [Label(key: "rack", value: "b12")], streamID: 1)))
        _ = try client.receive()
        try client.send(batch(1, 1...3, cpu: 42))
        _ = try client.receive()
        let body = try httpGet(admin, "/api/v1/nodes").body
        let nodes = try #require(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [[String: Any]])
        #expect(nodes.count == 1)
        #expect(nodes[0]["node"] as? String == "db \"primary\"")
        #expect(nodes[0]["tenant"] as? String == "default")
        #expect((nodes[0]["labels"] as? [String: String]) == ["rack": "b12"])
        #expect(nodes[0]["durable_seq"] as? Int == 3)
        #expect((nodes[0]["last_sample"] as? [String: Any])?["cpu"] as? Double == 42)
        #expect(nodes[0]["last_score"] as? Double == 0.5)
    }

    @Test func theAPINeedsABearerTokenScopedToItsTenantReloadedOnSIGHUP() throws {
        let tokens = tempPath("tokens")
        let adminTokens = tempPath("admin-tokens")
        defer { unlink(tokens); unlink(adminTokens) }
        try writeSecret("acme-agent acme\nbeta-agent beta\n", to: tokens)
        try writeSecret("acme-reader acme\nops *\n", to: adminTokens)
        let server = try ServerProcess(["--tokens-file", tokens, "--admin-tokens-file", adminTokens, "--scorer", "temporal"])
        let admin = try #require(server.adminAddress)
        #expect(server.logContains("api=\"2 bearer tokens\""))
        let client = try TestClient(server.address)
        _ = try client.hello(node: "a1", stream: 1, token: "acme-agent")
        _ = try client.hello(node: "b1", stream: 2, token: "beta-agent")

        func get(_ path: String, _ token: String?) throws -> (status: Int, body: String) {
            try httpRequest(admin, "GET \(path) HTTP/1.1\r\nHost: x\r\n" + (token.map { "Authorization: Bearer \($0)\r\n" } ?? "") + "\r\n")
        }
        #expect(try get("/metrics", nil).status == 200 && get("/healthz", nil).status == 200)
        #expect(try get("/api/v1/nodes", nil).status == 401)
        #expect(try get("/api/v1/incidents", "nope").status == 401)
        let acme = try get("/api/v1/nodes", "acme-reader")
        #expect(acme.status == 200 && acme.body.contains("\"a1\"") && !acme.body.contains("\"b1\""))
        #expect(try get("/api/v1/nodes?tenant=beta", "acme-reader").status == 403)
        #expect(try get("/api/v1/incidents?tenant=beta", "acme-reader").status == 403)
        #expect(try get("/api/v1/incidents", "acme-reader").status == 200)
        let everyone = try get("/api/v1/nodes", "ops")
        #expect(everyone.body.contains("\"a1\"") && everyone.body.contains("\"b1\""))
        let metrics = try httpGet(admin, "/metrics").body
        #expect(metric(metrics, "gridmon_protocol_violations_total{reason=\"admin_unauthenticated\"}") == 2)
        #expect(metric(metrics, "gridmon_protocol_violations_total{reason=\"admin_forbidden\"}") == 2)

        // SIGHUP re-reads the file: the revoked token is refused, the new one works.
        try writeSecret("beta-reader beta\n", to: adminTokens)
        kill(server.process.processIdentifier, SIGHUP)
        #expect(server.logContains("event=admin_tokens_reloaded"))
        #expect(try get("/api/v1/nodes", "acme-reader").status == 401)
        let beta = try get("/api/v1/nodes", "beta-reader")
        #expect(beta.status == 200 && beta.body.contains("\"b1\"") && !beta.body.contains("\"a1\""))
    }

    @Test func anAdminTokensFileOthersCanReadIsRefused() throws {
        let adminTokens = tempPath("admin-tokens")
        defer { unlink(adminTokens) }
        try "ops *\n".write(toFile: adminTokens, atomically: true, encoding: .utf8)
        chmod(adminTokens, 0o644)
        let run = try runBinary("gridmon-stream-server", ["--insecure-no-auth", "--admin-tokens-file", adminTokens, "--listen", "127.0.0.1:0",
                                                           "--data-dir", tempPath("data")], timeout: 20)
        #expect(run.status == 64 && run.stderr.contains(adminTokens))
    }
}
