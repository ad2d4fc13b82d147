import GridMonCore
import GridMonWire

/// One sample as a JSON object, for `gridmon-agent --once`: `{"node":…,"seq":…,
/// "timestamp_ns":…,"gauges":{"cpu":…,…}}`, fixed gauges under their stored names first, then
/// the extra gauges in the order sent. Pure.
///
/// Written by hand rather than with Foundation's JSONEncoder: the agent runs on every
/// machine and does not link Foundation (its RSS target is below 10 MiB, issue #12).
/// Strings are escaped per RFC 8259 §7; gauge values are always finite (`Sample.add`).
public enum SampleJSON {
    public static func encode(_ sample: Sample, node: String) -> String {
        let fixed: [(String, Double)] = [
            ("cpu", sample.cpuPercent), ("memory", sample.memoryPercent), ("disk", sample.diskPercent), ("load1", sample.load1),
            ("net_rx", sample.netRxBytesPerSec), ("net_tx", sample.netTxBytesPerSec),
            ("disk_read", sample.diskReadBytesPerSec), ("disk_write", sample.diskWriteBytesPerSec),
        ]
        let gauges = (fixed + sample.extra.map { ($0.name, $0.value) }).map { "\(string($0.0)):\(number($0.1))" }
        return "{\"node\":\(string(node)),\"seq\":\(sample.seq),\"timestamp_ns\":\(sample.timestampNs),\"gauges\":{"
            + gauges.joined(separator: ",") + "}}"
    }

    static func number(_ value: Double) -> String {
        guard value.isFinite else { return "null" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return "\(value)"
    }

    static func string(_ text: String) -> String { JSONText.quoted(text) }
}
