import GridMonPosix
import GridMonWire

/// One input of the agent, named as Telegraf names its inputs (`cpu`, `mem`, …), after
/// Telegraf's one-plugin-per-folder layout: each reads its files and adds gauges to a sample.
///
/// Fixed gauges (`Sample.cpuPercent`, …) stay where old servers read them; everything else
/// rides as named extra gauges, `<input>_<field>` and, per instance, `.<instance>` (e.g.
/// `net_bytes_recv_per_s.eth0`). Rates are per second over the last interval, so the
/// first sample carries none. Threading: owned by the agent's loop.
public protocol Collector: AnyObject {
    /// The input's name, as `--collectors` spells it.
    var name: String { get }
    /// Adds this input's gauges to `sample`, taken at `nowNs`.
    func collect(into sample: inout Sample, files: ProcFiles, nowNs: Int64)
}

/// The files of one collection round, each read at most once (several inputs parse
/// /proc/stat), and the "said once" memory for what this machine lacks.
///
/// A file that cannot be read is logged once at warn, naming it, and its gauges are skipped
/// (a container often lacks /proc/diskstats or /sys/block); it is said again only if it
/// came back and then went away.
public final class ProcFiles {
    public let procRoot: String
    public let sysRoot: String
    private var cache: [String: String?] = [:]
    private var missing = Set<String>()

    public init(procRoot: String = "/proc", sysRoot: String = "/sys") {
        self.procRoot = procRoot
        self.sysRoot = sysRoot
    }

    /// Forgets the last round's contents.
    public func newRound() { cache.removeAll(keepingCapacity: true) }

    /// `procRoot/name`, or nil (said once) when it cannot be read.
    public func proc(_ name: String) -> String? { read("\(procRoot)/\(name)", source: name) }

    /// A /sys file (nil when absent; not logged: attributes differ between drivers).
    public func sys(_ name: String) -> String? {
        try? Files.readText("\(sysRoot)/\(name)")
    }

    private func read(_ path: String, source: String) -> String? {
        if let cached = cache[path] { return cached }
        var text: String?
        do {
            text = try Files.readText(path)
            missing.remove(source)
        } catch {
            lacking(source, "\(error)")
        }
        cache[path] = text
        return text
    }

    /// The sources logged as missing now, and how many times anything was logged.
    public var reportedMissing: Set<String> { missing }
    public private(set) var reports = 0

    /// Logs once that `source` is not available on this machine, and why.
    public func lacking(_ source: String, _ why: String) {
        if missing.insert(source).inserted {
            reports += 1
            Log.warning("metric_unavailable", ["source": source, "error": why, "note": "skipped"])
        }
    }
}

/// Per-second rates of cumulative counters, between this read and the previous one.
///
/// Holds only the keys of the last read, so instances that vanish (a veth, a USB disk) are
/// forgotten. A counter that went backwards (reset, wrap, device re-created) gives no rate
/// this time rather than a huge or negative one.
struct CounterRates {
    private var previous: [String: UInt64] = [:]
    private var previousNs: Int64?
    private var current: [String: UInt64] = [:]
    private var nowNs: Int64 = 0

    /// Starts a read taken at `nowNs`.
    mutating func begin(_ nowNs: Int64) {
        self.nowNs = nowNs
        current.removeAll(keepingCapacity: true)
    }

    /// The rate of `key` now that it reads `value`, or nil the first time.
    mutating func rate(_ key: String, _ value: UInt64) -> Double? {
        current[key] = value
        guard let before = previous[key], let then = previousNs, nowNs > then, value >= before else { return nil }
        return Double(value - before) * 1e9 / Double(nowNs - then)
    }

    /// Ends the read: its values become the baseline of the next.
    mutating func end() {
        swap(&previous, &current)
        previousNs = nowNs
    }
}

extension Sample {
    /// Appends extra gauge `name` = `value` (dropped when not finite: InfluxDB cannot store it).
    mutating func add(_ name: String, _ value: Double?) {
        guard let value, value.isFinite else { return }
        extra.append(Gauge(name: name, value: value))
    }
}
