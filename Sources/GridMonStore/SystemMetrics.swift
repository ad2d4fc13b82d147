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

    /// Appends the lines of many samples of one node: the series key (measurement and tags) is
    /// escaped once, then each sample adds only its fields and timestamp. Same output as
    /// encoding `point(...)` for each sample; drops are counted in `drops`.
    public static func appendLines(
        node: String, tenant: String, labels: [Label], samples: [(sample: Sample, score: Double, anomalous: Bool)],
        to out: inout [UInt8], drops: inout LineProtocolDrops
    ) {
        guard let series = seriesKey(node: node, tenant: tenant, labels: labels, drops: &drops) else {
            drops.points += samples.count
            return
        }
        for item in samples {
            out.append(contentsOf: series)
            appendLineTail(item, to: &out, drops: &drops)
        }
    }

    /// The escaped series key of a node's lines (`system_metrics,host=…,tenant=…,labels…`), or
    /// nil when line protocol cannot carry it (counted in `drops`).
    public static func seriesKey(node: String, tenant: String, labels: [Label], drops: inout LineProtocolDrops) -> [UInt8]? {
        var tags: [(key: String, value: String)] = [("host", node), ("tenant", tenant)]
        for label in labels where !reservedTags.contains(label.key) { tags.append((label.key, label.value)) }
        return LineProtocolEncoder.seriesKey(measurement: measurement, tags: tags, drops: &drops)
    }

    /// Appends one sample's line after its series key: ` fields timestamp\n`.
    public static func appendLineTail(
        _ item: (sample: Sample, score: Double, anomalous: Bool), to out: inout [UInt8], drops: inout LineProtocolDrops
    ) {
        let (sample, score, anomalous) = item
        out.append(UInt8(ascii: " "))
        var fields = 0
        func field(_ key: StaticString, _ value: Double) {
            guard value.isFinite else { drops.nonFiniteFields += 1; return }
            if fields > 0 { out.append(UInt8(ascii: ",")) }
            key.withUTF8Buffer { out.append(contentsOf: $0) }
            out.append(UInt8(ascii: "="))
            LineProtocolEncoder.appendFloat(value, to: &out)
            fields += 1
        }
        field("cpu", sample.cpuPercent)
        field("memory", sample.memoryPercent)
        field("disk", sample.diskPercent)
        if fields > 0 { out.append(UInt8(ascii: ",")) }
        out.append(contentsOf: anomalous ? Array("anomaly_detected=1i".utf8) : Array("anomaly_detected=0i".utf8))
        fields += 1
        field("anomaly_score", score)
        field("load1", sample.load1)
        field("net_rx", sample.netRxBytesPerSec)
        field("net_tx", sample.netTxBytesPerSec)
        field("disk_read", sample.diskReadBytesPerSec)
        field("disk_write", sample.diskWriteBytesPerSec)
        let extras = sample.extra
        // A name's first gauge in the sample owns it: InfluxDB keeps one field of a name, and so
        // does GridMon, saying so. Few gauges (the usual case) are checked against the earlier
        // ones in place; many (a peer's choice) through a set, so the check stays linear.
        var seen: Set<String>? = extras.count > 16 ? Set(minimumCapacity: extras.count) : nil
        for (index, gauge) in extras.enumerated() where !reserved.contains(gauge.name) {
            // Names InfluxDB refuses or misreads are left out and counted (issue #10, defect 9).
            guard MetricNames.isWritableFieldKey(gauge.name) else { drops.badNames += 1; continue }
            let repeated = seen != nil ? !seen!.insert(gauge.name).inserted : extras[..<index].contains { $0.name == gauge.name }
            guard !repeated else { drops.badNames += 1; continue }
            guard gauge.value.isFinite else { drops.nonFiniteFields += 1; continue }
            out.append(UInt8(ascii: ","))
            LineProtocolEncoder.escape(gauge.name, special: LineProtocolEncoder.keySpecials, into: &out)
            out.append(UInt8(ascii: "="))
            LineProtocolEncoder.appendFloat(gauge.value, to: &out)
        }
        out.append(UInt8(ascii: " "))
        LineProtocolEncoder.appendInteger(sample.timestampNs, to: &out)
        out.append(UInt8(ascii: "\n"))
    }
}
