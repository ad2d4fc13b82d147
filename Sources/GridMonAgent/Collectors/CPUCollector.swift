import GridMonWire

/// `cpu`: busy percent (the fixed `cpu` gauge) and the share of each mode, from /proc/stat:
/// `cpu_usage_user`, `_system`, `_idle`, `_iowait`, `_steal`, `_nice`, `_irq` (hard and soft);
/// per core as `cpu_usage_user.cpu0` … when `perCPU` is set.
public final class CPUCollector: Collector {
    public let name = "cpu"
    private let perCPU: Bool
    private var previous: ProcStat?

    public init(perCPU: Bool) { self.perCPU = perCPU }

    public func collect(into sample: inout Sample, files: ProcFiles, nowNs: Int64) {
        guard let text = files.proc("stat"), let stat = ProcStat(text[...]) else { return }
        defer { previous = stat }
        guard let previous else { return }
        sample.cpuPercent = stat.total.percentBusy(since: previous.total)
        if let usage = stat.total.usage(since: previous.total) { add(usage, suffix: "", to: &sample) }
        guard perCPU else { return }
        let earlier = Dictionary(previous.perCPU.map { ($0.name, $0.times) }, uniquingKeysWith: { a, _ in a })
        for (cpu, times) in stat.perCPU {
            if let before = earlier[cpu], let usage = times.usage(since: before) { add(usage, suffix: "." + cpu, to: &sample) }
        }
    }

    private func add(_ usage: CPUUsage, suffix: String, to sample: inout Sample) {
        sample.add("cpu_usage_user" + suffix, usage.user)
        sample.add("cpu_usage_system" + suffix, usage.system)
        sample.add("cpu_usage_idle" + suffix, usage.idle)
        sample.add("cpu_usage_iowait" + suffix, usage.iowait)
        sample.add("cpu_usage_steal" + suffix, usage.steal)
        sample.add("cpu_usage_nice" + suffix, usage.nice)
        sample.add("cpu_usage_irq" + suffix, usage.irq)
    }
}

/// `mem`: used percent (the fixed `memory` gauge) and `mem_total`, `mem_used`,
/// `mem_available`, `mem_cached`, `mem_buffered`, bytes, from /proc/meminfo.
public final class MemCollector: Collector {
    public let name = "mem"
    public init() {}

    public func collect(into sample: inout Sample, files: ProcFiles, nowNs: Int64) {
        guard let text = files.proc("meminfo") else { return }
        guard let mem = MemInfo(text[...]) else { return files.lacking("meminfo", "no MemTotal/MemAvailable (Linux 3.14+)") }
        sample.memoryPercent = mem.usedPercent
        sample.add("mem_total", Double(mem.total))
        sample.add("mem_used", Double(mem.used))
        sample.add("mem_available", Double(mem.available))
        sample.add("mem_cached", Double(mem.cached))
        sample.add("mem_buffered", Double(mem.buffers))
    }
}

/// `swap`: `swap_total`, `swap_used` (bytes), `swap_used_percent` (0 without swap), and pages
/// moved as `swap_in_bytes_per_s`, `swap_out_bytes_per_s`, from /proc/meminfo and /proc/vmstat.
public final class SwapCollector: Collector {
    public let name = "swap"
    private let pageSize: Double
    private var rates = CounterRates()

    public init(pageSize: Int) { self.pageSize = Double(pageSize) }

    public func collect(into sample: inout Sample, files: ProcFiles, nowNs: Int64) {
        if let text = files.proc("meminfo"), let mem = MemInfo(text[...]) {
            sample.add("swap_total", Double(mem.swapTotal))
            sample.add("swap_used", Double(mem.swapUsed))
            sample.add("swap_used_percent", mem.swapUsedPercent)
        }
        guard let text = files.proc("vmstat"), let pages = swapPages(vmstat: text[...]) else { return }
        rates.begin(nowNs)
        sample.add("swap_in_bytes_per_s", rates.rate("in", pages.pagesIn).map { $0 * pageSize })
        sample.add("swap_out_bytes_per_s", rates.rate("out", pages.pagesOut).map { $0 * pageSize })
        rates.end()
    }
}

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
