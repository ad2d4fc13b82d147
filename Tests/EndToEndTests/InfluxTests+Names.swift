import Foundation
import Glibc
import GridMonWire
import Testing

/// Issue #10, defect 9: names that influxd 1.6.7 refuses or misreads never reach it. Bad node
/// ids and labels are refused at Hello; bad gauge names are left out (counted); every sample
/// accepted lands, and nothing is dead-lettered.
extension InfluxTests {
    @Test func everyAcceptedSampleIsWritableWhateverTheNamesItCameWith() throws {
        let influx = try InfluxProcess()
        let dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("gridmon-names-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: dataDir) }
        let server = try ServerProcess(["--insecure-no-auth", "--influx-url", "http://127.0.0.1:\(influx.port)", "--influx-create",
                                        "--influx-flush-ms", "200"], dataDir: dataDir)
        let refused: [(String, [Label])] = [
            ("node\\", []), ("line\nbreak", []), ("ok", [Label(key: "k2", value: "a\\")]),
            ("ok", [Label(key: "k", value: "1"), Label(key: "k", value: "2")]), ("ok", [Label(key: "time", value: "t")]),
        ]
        for (node, labels) in refused {
            let client = try TestClient(server.address)
            try client.send(.hello(Hello(nodeID: node, labels: labels, streamID: 1)))
            let messages = try client.drainUntilClosed()
            let code = messages.compactMap { if case .error(let e) = $0 { e.code } else { nil } }.first
            #expect(code == .invalidArgument, "\(node) \(labels) was not refused")
        }
        let client = try TestClient(server.address)
        try client.send(.hello(Hello(nodeID: "web 1,a=b", labels: [Label(key: "rack", value: "r 1,x=y")], streamID: 1)))
        guard case .welcome? = try client.receive() else { throw HarnessError("no Welcome") }
        let samples = (1...50).map { seq in
            Sample(seq: UInt64(seq), timestampNs: 1_767_225_600_000_000_000 + Int64(seq) * 1_000_000_000, cpuPercent: 10,
                   memoryPercent: 20, diskPercent: 30,
                   extra: [Gauge(name: "g\\", value: 1), Gauge(name: "time", value: 2), Gauge(name: "temp c", value: 3),
                           Gauge(name: "temp c", value: 4)])
        }
        try client.send(.samples(SampleBatch(streamID: 1, samples: samples)))
        var durable: UInt64 = 0
        while durable < 50, let message = try client.receive() { if case .ack(let ack) = message { durable = ack.durableSeq } }
        #expect(durable == 50)
        #expect(try influx.waitForCount("gridmon_default", 50) == 50)
        let result = try influx.query("gridmon_default", "SELECT \"temp c\", rack FROM system_metrics WHERE host = 'web 1,a=b'")
        let values = ((result["results"] as? [[String: Any]])?.first?["series"] as? [[String: Any]])?.first?["values"] as? [[Any]]
        #expect(values?.count == 50)
        #expect((values?.first?[1] as? NSNumber)?.doubleValue == 3 && values?.first?[2] as? String == "r 1,x=y")
        let metrics = try httpGet(try #require(server.adminAddress), "/metrics").body
        #expect(metrics.contains("gridmon_line_protocol_dropped_total{what=\"bad_field_name\"} 150"))
        let deadLetters = (try? String(contentsOfFile: dataDir + "/dead-letter.lp", encoding: .utf8)) ?? ""
        #expect(deadLetters.isEmpty)
    }
}
