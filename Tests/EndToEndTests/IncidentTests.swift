import Foundation
import GridMonCore
import GridMonForest
import GridMonPosix
import GridMonWire
import Testing

/// Live detection through the real `gridmon-stream-server` (issue #11): a node learns quietly,
/// its trouble becomes one incident — opened, closed, listed, counted, stored and logged once.
@Suite(.serialized) struct IncidentTests {
    /// A healthy node's sample `seq`: CPU, memory and traffic with a little deterministic noise.
    static func healthy(_ seq: UInt64) -> Sample {
        var rng = SplitMix64(seed: seq)
        var s = Sample(seq: seq, timestampNs: 1_767_225_600_000_000_000 + Int64(seq) * 1_000_000_000)
        s.cpuPercent = 20 + 4 * rng.nextUnit()
        s.memoryPercent = 40 + rng.nextUnit()
        s.diskPercent = 30 + 0.1 * rng.nextUnit()
        s.load1 = 0.8 + 0.1 * rng.nextUnit()
        s.netRxBytesPerSec = 100_000 + 10_000 * rng.nextUnit()
        s.netTxBytesPerSec = 50_000 + 5_000 * rng.nextUnit()
        return s
    }

    /// A troubled sample after 700 healthy ones: CPU pinned, memory climbing 1.5 % a sample,
    /// received traffic 50x.
    static func troubled(_ seq: UInt64) -> Sample {
        var s = healthy(seq)
        s.cpuPercent = 99
        s.memoryPercent = 40 + Double(seq - 700) * 1.5
        s.netRxBytesPerSec *= 50
        return s
    }

    /// Sends `samples` in frames of 10 and returns the acks up to the last seq.
    static func send(_ client: TestClient, _ samples: [Sample]) throws -> [Ack] {
        var acks: [Ack] = []
        for start in stride(from: 0, to: samples.count, by: 10) {
            try client.send(.samples(SampleBatch(streamID: 1, samples: Array(samples[start..<min(start + 10, samples.count)]))))
        }
        let last = samples.last!.seq
        while let message = try client.receive() {
            guard case .ack(let ack) = message else { continue }
            acks.append(ack)
            if ack.durableSeq >= last { break }
        }
        return acks
    }

    static func json(_ server: ServerProcess, _ path: String) throws -> Any {
        try JSONSerialization.jsonObject(with: Data(try httpGet(try #require(server.adminAddress), path).body.utf8))
    }

    @Test func aNodesTroubleBecomesOneIncidentOpenedClosedListedStoredAndLoggedOnce() throws {
        let dataDir = tempPath("incidents")
        let server = try ServerProcess(["--insecure-no-auth", "--incident-close-after", "20"], dataDir: dataDir)
        let client = try TestClient(server.address)
        _ = try client.hello(node: "web-1", stream: 1)

        // Learning: nothing judged, said so in the ack and the API.
        let learning = try Self.send(client, (1...290).map(Self.healthy))
        #expect(learning.allSatisfy { $0.detector == .learning && $0.anomalies.isEmpty })
        let node = try #require((try Self.json(server, "/api/v1/nodes") as? [[String: Any]])?.first)
        #expect(node["detector"] as? String == "learning")
        #expect(node["detector_metrics"] as? Int == 8)

        // Past the warm-up the node's own detector is fit in the background; then it judges.
        _ = try Self.send(client, (291...400).map(Self.healthy))
        var state = ""
        for _ in 0..<500 where state != "active" {
            state = ((try Self.json(server, "/api/v1/nodes") as? [[String: Any]])?.first?["detector"] as? String) ?? ""
            if state != "active" { usleep(10_000) }
        }
        #expect(state == "active")
        let quiet = try Self.send(client, (401...700).map(Self.healthy))
        #expect(quiet.last?.detector == .active)
        #expect(!server.logContains("event=incident_opened", timeout: 0.1), "a healthy node opened an incident")

        // Trouble: CPU pinned, memory climbing, traffic 50x, for 30 samples; then healthy again.
        let trouble = (701...730).map(Self.troubled)
        let flagged = try Self.send(client, trouble).flatMap(\.anomalies)
        #expect(flagged.count >= 20, "\(flagged.count) of 30 trouble samples flagged")
        #expect(server.logContains("event=incident_opened"))
        let open = try #require(try Self.json(server, "/api/v1/incidents") as? [String: Any])
        let opened = try #require((open["open"] as? [[String: Any]])?.first)
        #expect(opened["node"] as? String == "web-1")
        #expect(opened["state"] as? String == "open")
        let drivers = (opened["drivers"] as? [[String: Any]] ?? []).compactMap { $0["metric"] as? String }
        let expectedDrivers: Set<String> = ["cpu", "memory", "net_rx", "load1"]
        #expect(drivers.contains { expectedDrivers.contains($0) }, "drivers \(drivers)")
        #expect(metric(try httpGet(try #require(server.adminAddress), "/metrics").body, "gridmon_incidents_open") == 1)

        _ = try Self.send(client, (731...800).map(Self.healthy))
        #expect(server.logContains("event=incident_closed"))
        let after = try #require(try Self.json(server, "/api/v1/incidents") as? [String: Any])
        #expect((after["open"] as? [Any])?.isEmpty == true)
        let closed = try #require((after["recent"] as? [[String: Any]])?.first)
        #expect(closed["id"] as? Int == opened["id"] as? Int)
        let start = try #require(closed["start_ns"] as? Int)
        let end = try #require(closed["end_ns"] as? Int)
        #expect(start >= Int(Self.healthy(690).timestampNs) && start <= Int(Self.healthy(705).timestampNs))
        #expect(end >= Int(Self.healthy(725).timestampNs) && end <= Int(Self.healthy(760).timestampNs))
        let metrics = try httpGet(try #require(server.adminAddress), "/metrics").body
        #expect(metrics.contains("gridmon_incidents_total{tenant=\"default\"} 1\n"))
        #expect(metric(metrics, "gridmon_incidents_open") == 0)

        // Logged once at open and once at close, not once per sample.
        #expect(server.stop() == 0)
        #expect(server.log.components(separatedBy: "event=incident_opened").count - 1 == 1)
        #expect(server.log.components(separatedBy: "event=incident_closed").count - 1 == 1)

        // Stored: one point per event, in its own measurement.
        let export = try runBinary("gridmon-stream-server", ["export", "--data-dir", dataDir])
        let points = export.stdout.split(separator: "\n").filter { $0.hasPrefix("gridmon_incidents,") }
        #expect(points.count == 2)
        #expect(points.contains { $0.contains("event=opened") && $0.hasSuffix(" \(start)") })
        #expect(points.contains { $0.contains("event=closed") && $0.contains("duration_s=") && $0.hasSuffix(" \(end)") })
    }

    /// A temporal detector file given as `--model` judges nodes from their first sample, and
    /// the server stores the very scores `gridmon-train score` computes for the same rows.
    @Test func aTemporalModelScoresLiveAsOffline() throws {
        let dir = tempPath("temporal-model")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var csv = "cpu,memory,queue\n"
        var rows: [[Double]] = []
        var rng = SplitMix64(seed: 5)
        for i in 0..<600 {
            let row = [20 + 5 * rng.nextUnit() + (i > 500 && i < 520 ? 60 : 0), 40 + rng.nextUnit(), 3 + rng.nextUnit()]
            rows.append(row)
            csv += row.map { "\($0)" }.joined(separator: ",") + "\n"
        }
        try csv.write(toFile: dir + "/data.csv", atomically: true, encoding: .utf8)
        let fit = try runBinary("gridmon-train", ["fit", "--method", "temporal", "--data", dir + "/data.csv", "--out", dir + "/t.gmf", "--trees", "10"])
        #expect(fit.status == 0, "\(fit.stderr)")
        let offline = try runBinary("gridmon-train", ["score", "--model", dir + "/t.gmf", "--data", dir + "/data.csv"])
        let expected = offline.stdout.split(separator: "\n").dropFirst().compactMap { Double($0) }
        #expect(expected.count == 600)
        // evaluate --model reports quality and the model's own verdicts (its default threshold);
        // inspect names what each metric's forest sees (no level features by default).
        // Fit on the healthy first 500 rows this time (the trouble is rows 501...519).
        try csv.split(separator: "\n").prefix(501).joined(separator: "\n").write(toFile: dir + "/train.csv", atomically: true, encoding: .utf8)
        try ("label\n" + (0..<600).map { $0 > 500 && $0 < 520 ? "1" : "0" }.joined(separator: "\n") + "\n")
            .write(toFile: dir + "/labels.csv", atomically: true, encoding: .utf8)
        let healthy = try runBinary("gridmon-train", ["fit", "--method", "temporal", "--data", dir + "/train.csv", "--out", dir + "/h.gmf", "--trees", "10"])
        #expect(healthy.status == 0, "\(healthy.stderr)")
        let evaluation = try runBinary("gridmon-train", ["evaluate", "--model", dir + "/h.gmf", "--data", dir + "/data.csv",
                                                         "--labels", dir + "/labels.csv", "--json"])
        let quality = try #require(try JSONSerialization.jsonObject(with: Data(evaluation.stdout.utf8)) as? [String: Any])
        #expect((quality["roc_auc"] as? Double ?? 0) > 0.9)  // measured: 1.0, 20 flagged, precision 0.95
        #expect((quality["flagged"] as? Int ?? 0) >= 19 && (quality["recall_at_flag"] as? Double ?? 0) == 1)
        let inspect = try runBinary("gridmon-train", ["inspect", dir + "/t.gmf"])
        #expect(inspect.stdout.contains("features      delta, std, deviation per metric, range term at 1.0"), "\(inspect.stdout)")

        let server = try ServerProcess(["--insecure-no-auth", "--model", dir + "/t.gmf", "--node-warmup", "0"], dataDir: dir + "/data")
        let client = try TestClient(server.address)
        _ = try client.hello(node: "n", stream: 1)
        let samples = rows.enumerated().map { i, row in
            Sample(seq: UInt64(i + 1), timestampNs: Int64(i + 1) * 1_000_000_000, cpuPercent: row[0], memoryPercent: row[1],
                   extra: [Gauge(name: "queue", value: row[2])])
        }
        let acks = try Self.send(client, samples)
        #expect(acks.last?.detector == .learning)  // judged by the configured model, its own not fit
        #expect(server.stop() == 0)
        let export = try runBinary("gridmon-stream-server", ["export", "--data-dir", dir + "/data"])
        var stored: [Double] = []
        for line in export.stdout.split(separator: "\n") where line.hasPrefix("system_metrics,") {
            let field = line.split(separator: " ")[1].split(separator: ",").first { $0.hasPrefix("anomaly_score=") }
            stored.append(Double(field!.dropFirst("anomaly_score=".count))!)
        }
        #expect(stored.count == 600)
        let worst = zip(stored, expected).map { abs($0 - $1) }.max() ?? 1
        #expect(worst <= 1e-9, "largest difference \(worst)")
    }
}
