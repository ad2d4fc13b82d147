import Glibc
import GridMonCore

/// The `process_*` families every Prometheus exporter has (client_golang's process collector:
/// CPU seconds, resident and virtual memory, open and maximum descriptors, start time), read
/// from /proc/self at scrape time.
///
/// Threading: any thread; each call reads /proc afresh. Errors: a file /proc does not give
/// leaves its families out (never a made-up zero).
public enum ProcessMetrics {
    /// The fields of /proc/self/stat that the metrics need, in clock ticks and pages.
    public struct Stat: Equatable, Sendable {
        public var userTicks: UInt64
        public var systemTicks: UInt64
        public var startTicks: UInt64
        public var virtualBytes: UInt64
        public var residentPages: UInt64
    }

    /// Parses /proc/[pid]/stat (proc(5)): the command name in parentheses may hold spaces and
    /// parentheses itself, so fields are counted after the *last* ')'. Pure.
    public static func parseStat(_ text: String) -> Stat? {
        guard let close = text.lastIndex(of: ")") else { return nil }
        // After ')': field 3 (state) onwards; utime is field 14, stime 15, starttime 22,
        // vsize 23, rss 24.
        let fields = text[text.index(after: close)...].split(separator: " ", omittingEmptySubsequences: true)
        func field(_ number: Int) -> UInt64? { fields.count > number - 3 ? UInt64(fields[number - 3]) : nil }
        guard let utime = field(14), let stime = field(15), let start = field(22), let vsize = field(23), let rss = field(24) else { return nil }
        return Stat(userTicks: utime, systemTicks: stime, startTicks: start, virtualBytes: vsize, residentPages: rss)
    }

    /// The `btime` line of /proc/stat: boot time in seconds since the epoch. Pure.
    public static func parseBootTime(_ text: String) -> UInt64? {
        for line in text.split(separator: "\n") where line.hasPrefix("btime ") {
            return UInt64(String(line.dropFirst(6)).trimmingSpaces())
        }
        return nil
    }

    /// The soft "Max open files" limit of /proc/self/limits. Pure.
    public static func parseMaxFiles(_ text: String) -> UInt64? {
        for line in text.split(separator: "\n") where line.hasPrefix("Max open files") {
            let parts = line.dropFirst("Max open files".count).split(separator: " ")
            return parts.first.flatMap { UInt64($0) }
        }
        return nil
    }

    /// The families in Prometheus text format 0.0.4.
    public static func prometheusText() -> String {
        let ticks = Double(max(1, sysconf(Int32(_SC_CLK_TCK))))
        let pageSize = UInt64(max(1, sysconf(Int32(_SC_PAGESIZE))))
        var out = ""
        func family(_ name: String, _ type: String, _ help: String, _ value: String) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n\(name) \(value)\n"
        }
        if let text = try? Files.readText("/proc/self/stat", maxBytes: 4096), let stat = parseStat(text) {
            family("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.",
                   String(Double(stat.userTicks + stat.systemTicks) / ticks))
            family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", String(stat.residentPages * pageSize))
            family("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", String(stat.virtualBytes))
            if let boot = (try? Files.readText("/proc/stat", maxBytes: 1 << 20)).flatMap(parseBootTime) {
                family("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.",
                       String(Double(boot) + Double(stat.startTicks) / ticks))
            }
        }
        if let entries = try? Files.list("/proc/self/fd") {
            // The directory's own descriptor, open while it is listed, is not counted.
            family("process_open_fds", "gauge", "Number of open file descriptors.", String(max(0, entries.count - 1)))
        }
        if let max = (try? Files.readText("/proc/self/limits", maxBytes: 8192)).flatMap(parseMaxFiles) {
            family("process_max_fds", "gauge", "Maximum number of open file descriptors.", String(max))
        }
        return out
    }
}
