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
