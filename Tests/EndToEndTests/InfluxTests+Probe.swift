import Foundation
import Glibc
import GridMonWire
import Testing

/// Issue #18, item 5: the shipper probes InfluxDB apart from its writes, so `/readyz` tells
/// the truth within seconds and delivery resumes as soon as InfluxDB is back.
extension InfluxTests {
    /// Polls `/readyz` until its status is `status` (at most `seconds`); its last answer.
    private func readyz(_ server: ServerProcess, becomes status: Int, within seconds: Double) throws -> (status: Int, body: String) {
        let admin = try #require(server.adminAddress)
        var answer = try httpGet(admin, "/readyz")
        let deadline = Date().addingTimeInterval(seconds)
        while answer.status != status && Date() < deadline {
            usleep(100_000)
            answer = try httpGet(admin, "/readyz")
        }
        return answer
    }

    @Test func aServerStartedWhileInfluxDBIsDownSaysNotReadyBeforeAnyWrite() throws {
        let reserved = try ReservedPort()
        let port = reserved.port  // nothing listens there
        let server = try ServerProcess(["--insecure-no-auth", "--influx-url", "http://127.0.0.1:\(port)"])
        // No sample is sent, so no write ever fails: only the probe can know.
        let answer = try readyz(server, becomes: 503, within: 10)
        #expect(answer.status == 503)
        #expect(answer.body.contains("InfluxDB at http://127.0.0.1:\(port) is not answering"))
        #expect(metric(try httpGet(try #require(server.adminAddress), "/metrics").body, "gridmon_influx_up") == 0)
        #expect(server.logContains("event=influx_not_answering"))
    }

    @Test func anInfluxDBThatStopsAnsweringShowsInReadyzLongBeforeAWriteTimesOut() throws {
        let influx = try InfluxProcess()
        // Writes would time out after 60 s; the probe answers for the target within seconds.
        let server = try ServerProcess(["--insecure-no-auth", "--influx-url", "http://127.0.0.1:\(influx.port)", "--influx-create",
                                        "--influx-timeout-ms", "60000"])
        let client = try TestClient(server.address)
        _ = try client.hello(node: "hung", stream: 1)
        try client.send(batch(1, 1...100))
        #expect(try EndToEndTests.ackedThrough(client, 100) == 100)
        #expect(try influx.waitForCount("gridmon_default", 100) == 100)
        #expect(try readyz(server, becomes: 200, within: 5).status == 200)
        // influxd hangs (SIGSTOP): connections are accepted by the kernel, nothing answers.
        let pid = influx.process.processIdentifier
        kill(pid, SIGSTOP)
        defer { kill(pid, SIGCONT) }
        try client.send(batch(1, 101...200))
        #expect(try EndToEndTests.ackedThrough(client, 200) == 200)  // acked from the outbox all the same
        let started = Date()
        let hung = try readyz(server, becomes: 503, within: 15)
        print("readyz said 503 \(String(format: "%.1f", Date().timeIntervalSince(started))) s after influxd hung")
        #expect(hung.status == 503 && hung.body.contains("is not answering"))
        kill(pid, SIGCONT)
        #expect(try influx.waitForCount("gridmon_default", 200, seconds: 70) == 200)
        #expect(try readyz(server, becomes: 200, within: 10).status == 200)
        #expect(server.logContains("event=influx_answering_again"))
    }

    @Test func afterALongOutageDeliveryResumesAsSoonAsInfluxDBAnswers() throws {
        let reserved = try ReservedPort()
        let port = reserved.port
        let server = try ServerProcess(["--insecure-no-auth", "--influx-url", "http://127.0.0.1:\(port)", "--influx-create",
                                        "--influx-flush-ms", "200"])
        let client = try TestClient(server.address)
        _ = try client.hello(node: "outage", stream: 1)
        // 25 s of failed writes: the backoff (0.2 s doubling, full jitter) reaches 13-26 s.
        var sent: UInt64 = 0
        let outageEnds = Date().addingTimeInterval(25)
        while Date() < outageEnds {
            try client.send(batch(1, sent + 1...sent + 10))
            sent += 10
            #expect(try EndToEndTests.ackedThrough(client, sent) == sent)
            usleep(500_000)
        }
        let failures = metric(try httpGet(try #require(server.adminAddress), "/metrics").body, "gridmon_influx_failures_total") ?? 0
        #expect(failures >= 5, "the writes did not back off as expected (\(failures) failures)")
        reserved.release()
        let influx = try InfluxProcess(port: port)  // returns once influxd answers /ping
        let back = Date()
        #expect(try influx.waitForCount("gridmon_default", Int(sent), seconds: 60) == Int(sent))
        let resumed = Date().timeIntervalSince(back)
        print("after a 25 s outage (\(Int(failures)) failed writes) every sample landed \(String(format: "%.1f", resumed)) s after influxd answered")
        #expect(server.logContains("event=influx_answering_again"))
        // The probe runs every second; the backoff alone would have waited up to 26 s.
        #expect(resumed < 8, "delivery waited for the backoff (\(resumed) s)")
    }
}
