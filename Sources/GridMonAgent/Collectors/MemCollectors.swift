import GridMonWire

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
