import GridMonStore
import GridMonWire

/// The metrics a node's detector reads from its samples, in column order: the eight fixed
/// gauges, then the extra gauges the node sent in its first sample (issue #11: node models
/// ignored extra gauges, so a node sending 38 metrics was judged on at most 8).
///
/// Fixed when a node's detector starts; a gauge that appears later is not modelled (counted
/// in `unmodelled` by the caller) and one that disappears reads as its last value. At most
/// `maxMetrics` columns of writable names (`MetricNames`), so a node sending thousands of
/// gauges costs a bounded detector. Pure.
public struct MetricLayout: Sendable, Equatable {
    public static let fixed = ["cpu", "memory", "disk", "load1", "net_rx", "net_tx", "disk_read", "disk_write"]

    public let names: [String]
    /// Per column: the fixed gauge it is (0..<8), or -1 for an extra gauge.
    private let fixedIndex: [Int]
    /// Per column: where in `Sample.extra` the gauge was last found (a hint: agents send their
    /// gauges in the same order every time, so the lookup is one comparison).
    private var hints: [Int]

    public init(first sample: Sample, maxMetrics: Int) {
        var names = Self.fixed
        var seen = Set(names)
        // Only gauges the store can write (the rest are dropped from storage, so an incident
        // naming them would point at nothing); the names are peer bytes, bounded there.
        for gauge in sample.extra where names.count < maxMetrics && MetricNames.isWritableFieldKey(gauge.name)
            && seen.insert(gauge.name).inserted {
            names.append(gauge.name)
        }
        self.init(names: Array(names.prefix(max(1, maxMetrics))))
    }

    /// Columns named explicitly (a configured model's metrics, read from any sample).
    public init(names: [String]) {
        self.names = names
        fixedIndex = names.map { Self.fixedColumns[$0] ?? -1 }
        hints = [Int](repeating: 0, count: names.count)
    }

    public static func == (a: MetricLayout, b: MetricLayout) -> Bool { a.names == b.names }

    /// Writes the sample's value of each metric into `row` (NaN for a gauge it lacks).
    public mutating func read(_ sample: Sample, into row: inout [Double]) {
        row.removeAll(keepingCapacity: true)
        let extra = sample.extra
        for i in names.indices {
            let f = fixedIndex[i]
            if f >= 0 {
                row.append(Self.fixedValue(f, sample))
            } else if hints[i] < extra.count && extra[hints[i]].name == names[i] {
                row.append(extra[hints[i]].value)
            } else if let found = extra.firstIndex(where: { $0.name == names[i] }) {
                hints[i] = found
                row.append(extra[found].value)
            } else {
                row.append(.nan)
            }
        }
    }

    private static let fixedColumns: [String: Int] = Dictionary(uniqueKeysWithValues: fixed.enumerated().map { ($1, $0) })

    private static func fixedValue(_ index: Int, _ s: Sample) -> Double {
        switch index {
        case 0: s.cpuPercent
        case 1: s.memoryPercent
        case 2: s.diskPercent
        case 3: s.load1
        case 4: s.netRxBytesPerSec
        case 5: s.netTxBytesPerSec
        case 6: s.diskReadBytesPerSec
        default: s.diskWriteBytesPerSec
        }
    }
}
