/// /proc/stat: cumulative CPU time per mode, for all CPUs and each one, and the scheduler's
/// running/blocked process counts. Pure: text in, numbers out. Format: proc(5).

/// Cumulative CPU time of one `cpu` or `cpuN` line, in clock ticks.
public struct CPUTimes: Equatable, Sendable {
    public var user: UInt64 = 0
    public var nice: UInt64 = 0
    public var system: UInt64 = 0
    public var idle: UInt64 = 0
    public var iowait: UInt64 = 0
    public var irq: UInt64 = 0
    public var softirq: UInt64 = 0
    public var steal: UInt64 = 0

    public init() {}

    /// Parses the numbers after the `cpu` label ("user nice system idle iowait irq softirq
    /// steal guest guest_nice"); kernels before 2.6.11 stop early, missing modes read as 0.
    /// Guest time is already inside user and nice (proc(5)), so it is not added again.
    init?(fields: some Sequence<Substring>) {
        let numbers = fields.prefix(8).compactMap { UInt64($0) }
        guard numbers.count >= 4 else { return nil }
        func at(_ i: Int) -> UInt64 { i < numbers.count ? numbers[i] : 0 }
        (user, nice, system, idle, iowait, irq, softirq, steal) = (at(0), at(1), at(2), at(3), at(4), at(5), at(6), at(7))
    }

    /// Every tick counted (wrapping: counters are the kernel's, a peer of no one).
    public var total: UInt64 { user &+ nice &+ system &+ idle &+ iowait &+ irq &+ softirq &+ steal }
    /// Ticks not idle: idle and iowait are the CPU waiting.
    public var busy: UInt64 { total &- idle &- iowait }

    /// Busy percent over the interval from `earlier` to `self`.
    public func percentBusy(since earlier: CPUTimes) -> Double {
        guard total > earlier.total, busy >= earlier.busy else { return 0 }
        return min(100, 100 * Double(busy - earlier.busy) / Double(total - earlier.total))
    }

    /// Percent of the interval from `earlier` spent in each mode, Telegraf's `cpu` input
    /// fields (`usage_user`, …), or nil when the counters did not advance (or went back).
    public func usage(since earlier: CPUTimes) -> CPUUsage? {
        guard total > earlier.total else { return nil }
        let span = Double(total - earlier.total)
        func share(_ now: UInt64, _ then: UInt64) -> Double { now >= then ? min(100, 100 * Double(now - then) / span) : 0 }
        return CPUUsage(user: share(user, earlier.user), system: share(system, earlier.system),
                        idle: share(idle, earlier.idle), iowait: share(iowait, earlier.iowait),
                        steal: share(steal, earlier.steal), nice: share(nice, earlier.nice),
                        irq: share(irq &+ softirq, earlier.irq &+ earlier.softirq))
    }
}

/// Share of an interval per CPU mode, percent.
public struct CPUUsage: Equatable, Sendable {
    public var user, system, idle, iowait, steal, nice, irq: Double
}

/// What the agent reads from /proc/stat.
public struct ProcStat: Equatable, Sendable {
    /// The all-CPU line.
    public var total: CPUTimes
    /// `cpu0`, `cpu1`, … in file order (offline CPUs have no line).
    public var perCPU: [(name: String, times: CPUTimes)]
    /// Runnable and blocked (waiting for I/O) tasks now; nil on kernels without the lines.
    public var procsRunning: UInt64?
    public var procsBlocked: UInt64?

    public init?(_ text: Substring) {
        var total: CPUTimes?
        var perCPU: [(name: String, times: CPUTimes)] = []
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard let label = fields.first else { continue }
            if label == "cpu" {
                total = CPUTimes(fields: fields.dropFirst())
            } else if label.hasPrefix("cpu"), let times = CPUTimes(fields: fields.dropFirst()) {
                perCPU.append((String(label), times))
            } else if label == "procs_running" {
                procsRunning = fields.dropFirst().first.flatMap { UInt64($0) }
            } else if label == "procs_blocked" {
                procsBlocked = fields.dropFirst().first.flatMap { UInt64($0) }
            }
        }
        guard let total else { return nil }
        self.total = total
        self.perCPU = perCPU
    }

    public static func == (a: ProcStat, b: ProcStat) -> Bool {
        a.total == b.total && a.procsRunning == b.procsRunning && a.procsBlocked == b.procsBlocked
            && a.perCPU.map(\.name) == b.perCPU.map(\.name) && a.perCPU.map(\.times) == b.perCPU.map(\.times)
    }
}
