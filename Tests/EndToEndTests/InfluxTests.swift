import Foundation
import Glibc
import GridMonWire
import Testing

/// The server shipping its outbox to a real InfluxDB 1.6.7 (started by the test).
/// Needs /usr/bin/influxd (Tools/test installs Debian's influxdb); GRIDMON_REQUIRE_INTEROP=1
/// makes its absence a failure rather than a skip.
@Suite(.serialized, .enabled(if: InfluxProcess.available || ProcessInfo.processInfo.environment["GRIDMON_REQUIRE_INTEROP"] == "1"))
struct InfluxTests {
    func ackedThrough(_ client: TestClient, _ stream: UInt32, _ last: UInt64) throws {
        var durable: UInt64 = 0
        while durable < last, let message = try client.receive() {
            if case .ack(let ack) = message, ack.streamID == stream { durable = ack.durableSeq }
        }
    }

    @Test func everyAckedSampleLandsOnceWithItsTagsValuesAndTimestamp() throws {
        let influx = try InfluxProcess()
        let server = try ServerProcess(["--insecure-no-auth", "--influx-url", "http://127.0.0.1:\(influx.port)", "--influx-create",
                                        "--influx-batch-lines", "70"])
        let client = try TestClient(server.address)
        for stream: UInt32 in 1...3 { _ = try client.hello(node: "web-\(stream)", stream: stream) }
        for stream: UInt32 in 1...3 { try client.send(batch(stream, 1...100, cpu: 20 + Double(stream))) }
        for stream: UInt32 in 1...3 { try ackedThrough(client, stream, 100) }
        // A reconnect resends 51...100 of web-1: acknowledged again, stored once.
        let again = try TestClient(server.address)
        _ = try again.hello(node: "web-1", stream: 1)
        try again.send(batch(1, 51...110, cpu: 21))
        try ackedThrough(again, 1, 110)
        #expect(try influx.waitForCount("gridmon_default", 310) == 310)
        #expect(try influx.count("gridmon_default", where: "host = 'web-2'") == 100)
        let point = try influx.query("gridmon_default", "SELECT cpu, memory, disk, anomaly_detected, tenant FROM system_metrics WHERE host = 'web-3' AND time = 1700000007000000000")
        let values = ((point["results"] as? [[String: Any]])?.first?["series"] as? [[String: Any]])?.first?["values"] as? [[Any]]
        let row = try #require(values?.first)
        #expect((row[1] as? NSNumber)?.doubleValue == 23 && (row[2] as? NSNumber)?.doubleValue == 40)
        #expect((row[4] as? NSNumber)?.intValue == 0 && row[5] as? String == "default")
        let metrics = try httpGet(try #require(server.adminAddress), "/metrics").body
        #expect(metric(metrics, "gridmon_influx_lines_written_total") == 310)  // the resent 50 were acked, not shipped again
    }

    @Test func samplesAckedWhileInfluxDBIsDownArriveWhenItIsBack() throws {
        let reserved = try ReservedPort()
        let port = reserved.port
        let server = try ServerProcess(["--insecure-no-auth", "--influx-url", "http://127.0.0.1:\(port)", "--influx-create"])
        let client = try TestClient(server.address)
        _ = try client.hello(node: "db-1", stream: 1)
        try client.send(batch(1, 1...200))
        try ackedThrough(client, 1, 200)  // acked from the outbox: InfluxDB is not needed for that
        let admin = try #require(server.adminAddress)
        var ready = 200
        for _ in 0..<100 where ready == 200 {
            ready = try httpGet(admin, "/readyz").status
            if ready == 200 { usleep(100_000) }
        }
        #expect(ready == 503)  // the sink cannot write: not ready
        reserved.release()
        let influx = try InfluxProcess(port: port)
        #expect(try influx.waitForCount("gridmon_default", 200, seconds: 60) == 200)
        for _ in 0..<100 where ready != 200 {
            ready = try httpGet(admin, "/readyz").status
            if ready != 200 { usleep(100_000) }
        }
        #expect(ready == 200)
        #expect(server.logContains("event=influx_answering_again"))  // the probe saw it come back (no write need have failed first)
    }

    @Test func influxdStoppedMidStreamAndTheServerSigkilledLoseNothingAndDuplicateNothing() throws {
        let influx = try InfluxProcess()
        let dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("gridmon-e2e-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: dataDir) }
        let port = try freeLoopbackPort()
        let args = ["--insecure-no-auth", "--influx-url", "http://127.0.0.1:\(influx.port)", "--influx-create"]
        var server: ServerProcess? = try ServerProcess(args, listen: "127.0.0.1:\(port)", dataDir: dataDir)
        var client: TestClient? = try TestClient(server!.address)
        _ = try client!.hello(node: "steady", stream: 1)
        try client!.send(batch(1, 1...100))
        try ackedThrough(client!, 1, 100)
        #expect(try influx.waitForCount("gridmon_default", 100) == 100)

        // influxd goes away mid-stream; samples keep being acked from the outbox.
        influx.stop()
        try client!.send(batch(1, 101...200))
        try ackedThrough(client!, 1, 200)
        usleep(1_500_000)
        // The server is SIGKILLed too, and comes back on the same outbox.
        #expect(server?.stop(signal: SIGKILL) == SIGKILL)
        client = nil
        server = nil
        let restartedInflux = try InfluxProcess(port: influx.port, directory: influx.directory)
        server = try ServerProcess(args, listen: "127.0.0.1:\(port)", dataDir: dataDir)
        client = try TestClient(server!.address)
        #expect(try client!.hello(node: "steady", stream: 1).durableSeq == 200)
        try client!.send(batch(1, 201...250))
        try ackedThrough(client!, 1, 250)
        // Every acked sample exactly once: 250 points, no more.
        #expect(try restartedInflux.waitForCount("gridmon_default", 250, seconds: 60) == 250)
        usleep(500_000)
        #expect(try restartedInflux.count("gridmon_default") == 250)
    }

    @Test func refusedCredentialsKeepTheDataAndSayNotReadyUntilFixed() throws {
        let influx = try InfluxProcess(authentication: true)
        let dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("gridmon-auth-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: dataDir) }
        // Authentication takes effect once an admin exists.
        #expect(try influxRequest(influx.port, "POST", "/query?q=\(percent("CREATE USER admin WITH PASSWORD 'pw' WITH ALL PRIVILEGES"))").status == 200)
        influx.credentials = "&u=admin&p=pw"
        #expect(try influxRequest(influx.port, "POST", "/query?q=\(percent("CREATE DATABASE gridmon_default"))&u=admin&p=pw").status == 200)
        // No credentials: InfluxDB answers 401.
        var server: ServerProcess? = try ServerProcess(["--insecure-no-auth", "--influx-url", "http://127.0.0.1:\(influx.port)"], dataDir: dataDir)
        let client = try TestClient(server!.address)
        _ = try client.hello(node: "locked", stream: 1)
        try client.send(batch(1, 1...30))
        try ackedThrough(client, 1, 30)
        #expect(server!.logContains("event=influx_unauthorized"))
        #expect(try httpGet(try #require(server!.adminAddress), "/readyz").status == 503)
        #expect(server?.stop() == 0)
        server = nil

        // The operator gives the server the credentials and restarts it: nothing was lost.
        let fixed = try ServerProcess(["--insecure-no-auth", "--influx-url", "http://127.0.0.1:\(influx.port)", "--influx-create",
                                       "--influx-user", "admin", "--influx-password", "pw"], dataDir: dataDir)
        #expect(try influx.waitForCount("gridmon_default", 30) == 30)
        var ready = 0
        for _ in 0..<50 where ready != 200 {
            ready = try httpGet(try #require(fixed.adminAddress), "/readyz").status
            if ready != 200 { usleep(100_000) }
        }
        #expect(ready == 200)
    }

    @Test func aFieldTypeConflictDeadLettersItsLinesAndTheRestFlows() throws {
        let influx = try InfluxProcess()
        // `temp_c` is a string field of system_metrics in this shard already (field types are
        // per measurement and shard): lines carrying a float temp_c will conflict.
        #expect(try influxRequest(influx.port, "POST", "/query?q=\(percent("CREATE DATABASE gridmon_default"))").status == 200)
        let seeded = try influxRequest(influx.port, "POST", "/write?db=gridmon_default&precision=ns",
                                       body: "system_metrics,host=other,tenant=default temp_c=\"hot\" 1700000000000000000\n")
        #expect(seeded.status == 204)
        let server = try ServerProcess(["--insecure-no-auth", "--influx-url", "http://127.0.0.1:\(influx.port)"])
        let client = try TestClient(server.address)
        _ = try client.hello(node: "clash", stream: 1)
        _ = try client.hello(node: "fine", stream: 2)
        let hot = (1...5).map { seq in
            Sample(seq: UInt64(seq), timestampNs: 1_700_000_000_000_000_000 + Int64(seq) * 1_000_000_000, cpuPercent: 50,
                   memoryPercent: 40, diskPercent: 50, extra: [Gauge(name: "temp_c", value: 80)])
        }
        try client.send(.samples(SampleBatch(streamID: 1, samples: hot)), batch(2, 1...40))
        try ackedThrough(client, 1, 5)
        try ackedThrough(client, 2, 40)
        #expect(try influx.waitForCount("gridmon_default", 40, where: "host = 'fine'") == 40)
        let admin = try #require(server.adminAddress)
        var dead = 0.0
        for _ in 0..<100 where dead < 5 {
            dead = metric(try httpGet(admin, "/metrics").body, "gridmon_influx_dead_letter_lines_total") ?? 0
            if dead < 5 { usleep(100_000) }
        }
        #expect(dead == 5)
        let letters = try String(contentsOfFile: server.dataDir + "/dead-letter.lp", encoding: .utf8)
        #expect(letters.contains("field type conflict"))
        #expect(letters.split(separator: "\n").filter { $0.hasPrefix("system_metrics,host=clash") }.count == 5)
    }
}

/// The v2 write API (`/api/v2/write`, token auth) against a real server that speaks it:
/// Debian's victoria-metrics (InfluxDB 1.6.7 has no v2 API).
@Suite(.serialized, .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/victoria-metrics")
                           || ProcessInfo.processInfo.environment["GRIDMON_REQUIRE_INTEROP"] == "1"))
struct InfluxV2Tests {
    @Test func theV2APIDeliversEverySampleWithItsTags() throws {
        let port = try freeLoopbackPort()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gridmon-vm-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let vm = Process()
        vm.executableURL = URL(fileURLWithPath: "/usr/bin/victoria-metrics")
        // -retentionPeriod in months: the test's samples are dated 2023.
        vm.arguments = ["-httpListenAddr", "127.0.0.1:\(port)", "-storageDataPath", directory, "-retentionPeriod", "1200",
                        "-search.latencyOffset", "0s"]
        vm.standardOutput = FileHandle.nullDevice
        vm.standardError = FileHandle.nullDevice
        try vm.run()
        defer { vm.terminate(); vm.waitUntilExit() }
        var up = false
        for _ in 0..<100 where !up {
            up = (try? influxRequest(port, "GET", "/health").status) == 200
            if !up { usleep(50_000) }
        }
        #expect(up)

        let server = try ServerProcess(["--insecure-no-auth", "--influx-url", "http://127.0.0.1:\(port)", "--influx-api", "v2",
                                        "--influx-org", "acme", "--influx-bucket", "metrics_{tenant}", "--influx-token", "secret"])
        let client = try TestClient(server.address)
        _ = try client.hello(node: "vm-node", stream: 1)
        try client.send(batch(1, 1...60, cpu: 33))
        var durable: UInt64 = 0
        while durable < 60, case .ack(let ack)? = try client.receive() { durable = ack.durableSeq }
        // VictoriaMetrics stores each field as `<measurement>_<field>`; count the cpu values.
        var values = 0
        for _ in 0..<100 where values < 60 {
            let body = try influxRequest(port, "POST", "/api/v1/export?match[]=\(percent("system_metrics_cpu"))").body
            values = body.split(separator: "\n").compactMap { line -> Int? in
                guard let json = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                      let metric = json["metric"] as? [String: String], metric["host"] == "vm-node",
                      let list = json["values"] as? [Double] else { return nil }
                return list.filter { $0 == 33 }.count
            }.reduce(0, +)
            if values < 60 { usleep(100_000) }
        }
        #expect(values == 60)
    }
}
