/// How an incident's opening and closing are stored: measurement `gridmon_incidents`, one
/// point per event, for Grafana annotations and alert history (issue #11, item 3).
///
/// Tags: `host`, `tenant` (as `system_metrics`), `event` (`opened` or `closed`: its own series,
/// so a closing never overwrites the opening at the same time). Fields: `id` (integer, the same
/// on both points), `peak_score`, `flagged` (integer, flagged samples so far), `duration_s`
/// (closed only), `drivers` (string, e.g. `memory ↑ 31.2 (48.0 → 79.2, +65 %) in 12m`).
/// Time: the incident's start for `opened`, its end for `closed`. Pure.
public enum IncidentMetrics {
    public static let measurement = "gridmon_incidents"

    public static func point(opened: Bool, id: UInt64, node: String, tenant: String, startNs: Int64, endNs: Int64?,
                             peakScore: Double, flagged: Int, drivers: String) -> Point {
        var fields: [(key: String, value: Point.Value)] = [
            ("id", .integer(Int64(truncatingIfNeeded: id))), ("peak_score", .float(peakScore)), ("flagged", .integer(Int64(flagged))),
        ]
        if !opened, let endNs { fields.append(("duration_s", .float(Double(endNs - startNs) / 1e9))) }
        fields.append(("drivers", .string(drivers)))
        return Point(measurement: measurement, tags: [("host", node), ("tenant", tenant), ("event", opened ? "opened" : "closed")],
                     fields: fields, timestampNs: opened ? startNs : (endNs ?? startNs))
    }
}
