import GridMonPosix
import GridMonWire

/// `processes`: `processes_running`, `processes_blocked` (waiting for I/O) from /proc/stat,
/// `processes_total` (entries of /proc) and `processes_total_threads` (/proc/loadavg).
public final class ProcessesCollector: Collector {
    public let name = "processes"
    public init() {}

    public func collect(into sample: inout Sample, files: ProcFiles, nowNs: Int64) {
        if let text = files.proc("stat"), let stat = ProcStat(text[...]) {
            sample.add("processes_running", stat.procsRunning.map { Double($0) })
            sample.add("processes_blocked", stat.procsBlocked.map { Double($0) })
        }
        if let names = try? Files.list(files.procRoot) {
            sample.add("processes_total", Double(names.reduce(0) { $0 + ($1.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 } ? 1 : 0) }))
        }
        if let text = files.proc("loadavg"), let load = LoadAverage(text[...]) { sample.add("processes_total_threads", Double(load.threads)) }
    }
}
