import GridMonForest
import GridMonWire

/// Replays the rows of a CSV file (with header) as samples, for every node alike: row i is
/// the node's sample i+1, one simulated second apart. Columns named `cpu`, `memory`, `disk`,
/// `load1`, `net_rx`, `net_tx`, `disk_read`, `disk_write` fill those fields; every other
/// column becomes an extra gauge of that name. With labels (one 0/1 per row), runs of 1s are
/// the ground truth the server's verdicts are scored against ("labelled"). Pure.
public struct ReplayWorkload: LabelledWorkload {
    let columns: [String]
    let rows: [[Double]]
    /// For each row: the first row of the labelled run it is in, or nil when unlabelled.
    let runStart: [Int?]

    /// - Throws: when `labels` does not have one 0/1 per row.
    public init(table: CSVTable, labels: CSVTable?) throws(CSVTable.ParseError) {
        columns = table.columns
        rows = table.rows
        var starts = [Int?](repeating: nil, count: table.rows.count)
        if let labels {
            guard labels.rows.count == table.rows.count, labels.columns.count == 1 else {
                throw CSVTable.ParseError(file: "labels", line: 0, reason: "\(labels.rows.count) labels for \(table.rows.count) rows (one 0/1 column expected)")
            }
            var current: Int?
            for (i, row) in labels.rows.enumerated() {
                guard row[0] == 0 || row[0] == 1 else { throw CSVTable.ParseError(file: "labels", line: i + 2, reason: "label \(row[0]) is not 0 or 1") }
                current = row[0] == 1 ? (current ?? i) : nil
                starts[i] = current
            }
        }
        runStart = starts
    }

    public var samplesPerNode: UInt64? { UInt64(rows.count) }

    public func label(node: String, seq: UInt64) -> (kind: String, start: UInt64)? {
        let i = Int((seq - 1) % UInt64(rows.count))
        return runStart[i].map { ("labelled", UInt64($0) + 1) }
    }

    public func sample(node: String, seq: UInt64) -> Sample {
        let row = rows[Int((seq - 1) % UInt64(rows.count))]
        var sample = Sample(seq: seq, timestampNs: 1_767_225_600_000_000_000 + Int64(seq) * 1_000_000_000)
        for (c, name) in columns.enumerated() {
            let v = row[c]
            switch name {
            case "cpu": sample.cpuPercent = v
            case "memory": sample.memoryPercent = v
            case "disk": sample.diskPercent = v
            case "load1": sample.load1 = v
            case "net_rx": sample.netRxBytesPerSec = v
            case "net_tx": sample.netTxBytesPerSec = v
            case "disk_read": sample.diskReadBytesPerSec = v
            case "disk_write": sample.diskWriteBytesPerSec = v
            default: sample.extra.append(Gauge(name: name, value: v))
            }
        }
        return sample
    }
}
