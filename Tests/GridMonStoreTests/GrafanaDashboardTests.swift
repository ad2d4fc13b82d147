import Foundation
import GridMonWire
import Testing
@testable import GridMonStore

/// `Tools/grafana/gridmon-dashboard.json` (issue #14, item 5) asks only for what GridMon
/// stores: every InfluxQL query in it names a measurement the server writes, and only fields
/// and tags that measurement has, as the encoders themselves produce them.
@Suite struct GrafanaDashboardTests {
    /// Fields and tags per measurement, read off real points from the encoders.
    static let schema: [String: (fields: Set<String>, tags: Set<String>)] = {
        var sample = Sample(seq: 1, timestampNs: 1)
        sample.extra = []
        let system = SystemMetrics.point(node: "n", tenant: "t", labels: [], sample: sample, score: 0.5, anomalous: false)
        let opened = IncidentMetrics.point(opened: true, id: 1, node: "n", tenant: "t", startNs: 1, endNs: nil, peakScore: 1, flagged: 1, drivers: "d")
        let closed = IncidentMetrics.point(opened: false, id: 1, node: "n", tenant: "t", startNs: 1, endNs: 2, peakScore: 1, flagged: 1, drivers: "d")
        return [
            system.measurement: (Set(system.fields.map(\.key)), Set(system.tags.map(\.key))),
            opened.measurement: (Set((opened.fields + closed.fields).map(\.key)), Set((opened.tags + closed.tags).map(\.key))),
        ]
    }()

    static func dashboard() throws -> [String: Any] {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Tools/grafana/gridmon-dashboard.json").path
        return try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any])
    }

    /// Every `query` string anywhere in the dashboard (panels, annotations, variables).
    static func queries(in value: Any) -> [String] {
        if let object = value as? [String: Any] {
            return object.flatMap { key, inner in key == "query" ? [inner as? String].compactMap { $0 } : queries(in: inner) }
        }
        if let array = value as? [Any] { return array.flatMap(queries) }
        return []
    }

    /// The double-quoted identifiers in `text`.
    static func identifiers(_ text: Substring) -> [String] {
        text.split(separator: "\"", omittingEmptySubsequences: false).enumerated().filter { $0.offset % 2 == 1 }.map { String($0.element) }
    }

    @Test func everyQueryNamesAMeasurementFieldsAndTagsThatGridMonWrites() throws {
        let dashboard = try Self.dashboard()
        let queries = Self.queries(in: dashboard)
        #expect(queries.count >= 14)
        var measurementsUsed = Set<String>()
        for query in queries {
            if query.hasPrefix("SHOW TAG VALUES") {
                // SHOW TAG VALUES FROM "m" WITH KEY = "k" [WHERE "tag" =~ …]
                let names = Self.identifiers(query[...])
                let schema = try #require(Self.schema[names[0]], "unknown measurement in \(query)")
                for tag in names.dropFirst() { #expect(schema.tags.contains(tag), "\(tag) is not a tag of \(names[0]): \(query)") }
                continue
            }
            let from = try #require(query.range(of: " FROM "), "no FROM in \(query)")
            let rest = query[from.upperBound...]
            let measurement = try #require(Self.identifiers(rest).first)
            let schema = try #require(Self.schema[measurement], "unknown measurement \(measurement) in \(query)")
            measurementsUsed.insert(measurement)
            for field in Self.identifiers(query[..<from.lowerBound]) {
                #expect(schema.fields.contains(field), "\(field) is not a field of \(measurement): \(query)")
            }
            for tag in Self.identifiers(rest).dropFirst() {
                #expect(schema.tags.contains(tag), "\(tag) is not a tag of \(measurement): \(query)")
            }
            #expect(query.contains("$timeFilter"), "unbounded in time: \(query)")
        }
        #expect(measurementsUsed == ["system_metrics", "gridmon_incidents"])
        // The fleet view's panels: CPU, memory, disk, score, and incidents as annotations.
        let annotations = try #require((dashboard["annotations"] as? [String: Any])?["list"] as? [[String: Any]])
        #expect(annotations.allSatisfy { ($0["query"] as? String)?.contains("FROM \"gridmon_incidents\"") == true })
        let titles = ((dashboard["panels"] as? [[String: Any]]) ?? []).compactMap { $0["title"] as? String }
        for title in ["CPU %", "Memory %", "Disk %", "Anomaly score"] { #expect(titles.contains(title)) }
    }

    @Test func everyPanelUsesTheProvisionedDataSource() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../Tools/grafana/provisioning/datasources/gridmon.yaml").path
        let provisioning = try String(contentsOfFile: path, encoding: .utf8)
        #expect(provisioning.contains("uid: gridmon-influxdb") && provisioning.contains("type: influxdb"))
        let text = String(decoding: try JSONSerialization.data(withJSONObject: try Self.dashboard()), as: UTF8.self)
        let uids = Set(text.components(separatedBy: "\"uid\":\"").dropFirst().compactMap { $0.split(separator: "\"").first.map(String.init) })
        #expect(uids == ["gridmon-influxdb", "gridmon-fleet"])
    }
}
