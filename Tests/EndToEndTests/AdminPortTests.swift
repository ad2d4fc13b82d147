import Foundation
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
}
