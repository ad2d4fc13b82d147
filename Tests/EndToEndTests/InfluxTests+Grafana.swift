import Foundation
import GridMonWire
import Testing

/// The Grafana dashboard's InfluxQL runs on a real InfluxDB 1.6.7 holding what the server
/// shipped (issue #14, item 5): no query is refused, and the CPU panel's finds the node.
extension InfluxTests {
    private static func queries(in value: Any) -> [String] {
        if let object = value as? [String: Any] {
            return object.flatMap { key, inner in key == "query" ? [inner as? String].compactMap { $0 } : queries(in: inner) }
        }
        return (value as? [Any])?.flatMap(queries) ?? []
    }

    @Test func theGrafanaDashboardsQueriesRunOnInfluxDB() throws {
        let influx = try InfluxProcess()
        let server = try ServerProcess(["--insecure-no-auth", "--influx-url", "http://127.0.0.1:\(influx.port)", "--influx-create"])
        let client = try TestClient(server.address)
        _ = try client.hello(node: "graf-1", stream: 1)
        let now = Int64(Date().timeIntervalSince1970) * 1_000_000_000
        try client.send(.samples(SampleBatch(streamID: 1, samples: (1...60).map {
            Sample(seq: $0, timestampNs: now - (60 - Int64($0)) * 1_000_000_000, cpuPercent: 30, memoryPercent: 40, diskPercent: 50)
        })))
        #expect(try influx.waitForCount("gridmon_default", 60) == 60)
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Tools/grafana/gridmon-dashboard.json")
        let dashboard = try JSONSerialization.jsonObject(with: Data(contentsOf: path))
        let queries = Self.queries(in: dashboard)
        #expect(queries.count >= 14)
        for query in queries {
            // What Grafana substitutes: the time range, the interval, "All" for the variables.
            let q = query.replacingOccurrences(of: "$timeFilter", with: "time > now() - 1h")
                .replacingOccurrences(of: "$__interval", with: "10s")
                .replacingOccurrences(of: "$tenant", with: ".*").replacingOccurrences(of: "$host", with: ".*")
            let answer = try influx.query("gridmon_default", q)
            let results = try #require(answer["results"] as? [[String: Any]], "no results for \(q): \(answer)")
            #expect(answer["error"] == nil && results.allSatisfy { $0["error"] == nil }, "InfluxDB refused \(q): \(answer)")
            if query.contains("mean(\"cpu\")") {
                let series = try #require(results.first?["series"] as? [[String: Any]])
                #expect((series.first?["tags"] as? [String: String])?["host"] == "graf-1")
            }
        }
    }
}
