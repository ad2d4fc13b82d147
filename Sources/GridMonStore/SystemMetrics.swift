import GridMonWire

/// GridMon's stored schema, kept from the original GridMon so its dashboards keep working:
/// measurement `system_metrics`, tag `host`, fields `cpu`, `memory`, `disk` and
/// `anomaly_detected` (integer 0/1); GridMon adds the `tenant` tag and the agent's labels as
/// tags, and the fields `anomaly_score`, `load1`, `net_rx`, `net_tx`, `disk_read`,
/// `disk_write` and the extra gauges under their own names.
///
/// The point's timestamp is the sample's own and its series is the node's, so a resent sample
/// overwrites itself in InfluxDB instead of adding a duplicate. Pure.
public enum SystemMetrics {
    public static let measurement = "system_metrics"
    static let reserved: Set<String> = ["cpu", "memory", "disk", "anomaly_detected", "anomaly_score", "load1",
                                        "net_rx", "net_tx", "disk_read", "disk_write"]
    static let reservedTags: Set<String> = ["host", "tenant"]

    public static func point(node: String, tenant: String, labels: [Label], sample: Sample, score: Double, anomalous: Bool) -> Point {
        var tags: [(key: String, value: String)] = [("host", node), ("tenant", tenant)]
        for label in labels where !reservedTags.contains(label.key) { tags.append((label.key, label.value)) }
        var fields: [(key: String, value: Point.Value)] = [
            ("cpu", .float(sample.cpuPercent)), ("memory", .float(sample.memoryPercent)), ("disk", .float(sample.diskPercent)),
            ("anomaly_detected", .integer(anomalous ? 1 : 0)), ("anomaly_score", .float(score)), ("load1", .float(sample.load1)),
            ("net_rx", .float(sample.netRxBytesPerSec)), ("net_tx", .float(sample.netTxBytesPerSec)),
            ("disk_read", .float(sample.diskReadBytesPerSec)), ("disk_write", .float(sample.diskWriteBytesPerSec)),
        ]
        for gauge in sample.extra where !reserved.contains(gauge.name) { fields.append((gauge.name, .float(gauge.value))) }
        return Point(measurement: measurement, tags: tags, fields: fields, timestampNs: sample.timestampNs)
    }
}
