import GridMonWire

/// `system`: the 1-minute load (the fixed `load1` gauge), `system_load5`, `system_load15`,
/// `system_uptime` (seconds), `system_n_cpus` (online), from /proc/loadavg, /proc/uptime and
/// /proc/stat.
public final class SystemCollector: Collector {
    public let name = "system"
    public init() {}

    public func collect(into sample: inout Sample, files: ProcFiles, nowNs: Int64) {
        if let text = files.proc("loadavg"), let load = LoadAverage(text[...]) {
            sample.load1 = load.load1
            sample.add("system_load5", load.load5)
            sample.add("system_load15", load.load15)
        }
        if let text = files.proc("uptime") { sample.add("system_uptime", uptimeSeconds(uptime: text[...])) }
        if let text = files.proc("stat"), let stat = ProcStat(text[...]) { sample.add("system_n_cpus", Double(max(1, stat.perCPU.count))) }
    }
}
