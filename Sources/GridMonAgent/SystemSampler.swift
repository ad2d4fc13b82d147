import Glibc
import GridMonPosix
import GridMonWire

/// Which inputs run and what they look at.
public struct CollectorConfig: Sendable {
    /// Every input, in the order their gauges are sent (system-wide first: a server models a
    /// node's first 64 gauges).
    public static let all = ["cpu", "mem", "swap", "system", "processes", "disk", "diskio", "net", "textfile"]

    /// Inputs that run (`textfile` only with `textfileDirectory`).
    public var enabled = Set(all)
    /// The filesystem of the fixed `disk` gauge.
    public var diskPath = "/"
    /// Mount points of the `disk` input; nil = every real filesystem.
    public var mounts: [String]?
    /// Whole disks of the `diskio` input; nil = all.
    public var devices: [String]?
    /// Interfaces of the `net` input; nil = all but `lo` that are not down.
    public var interfaces: [String]?
    /// Per-core `cpu_usage_*` gauges.
    public var perCPU = false
    /// node_exporter-style `*.prom` files.
    public var textfileDirectory: String?

    public init() {}
}

/// Reads this machine's gauges into `Sample`s by running the enabled collectors in order.
///
/// Rates are differences between two reads, so the first sample carries none (fixed rate
/// gauges read 0). A source the machine lacks is skipped and said once (`ProcFiles`).
/// Threading: owned by one thread (the agent's loop, or `--once`).
public final class SystemSampler {
    private let collectors: [any Collector]
    private let files: ProcFiles

    /// - Parameters: `procRoot`/`sysRoot` let tests point at captured copies.
    public init(_ config: CollectorConfig = CollectorConfig(), procRoot: String = "/proc", sysRoot: String = "/sys") {
        files = ProcFiles(procRoot: procRoot, sysRoot: sysRoot)
        var made: [any Collector] = []
        for name in CollectorConfig.all where config.enabled.contains(name) {
            switch name {
            case "cpu": made.append(CPUCollector(perCPU: config.perCPU))
            case "mem": made.append(MemCollector())
            case "swap": made.append(SwapCollector(pageSize: max(4096, sysconf(Int32(_SC_PAGESIZE)))))
            case "system": made.append(SystemCollector())
            case "processes": made.append(ProcessesCollector())
            case "disk": made.append(DiskCollector(diskPath: config.diskPath, paths: config.mounts))
            case "diskio": made.append(DiskIOCollector(devices: config.devices))
            case "net": made.append(NetCollector(interfaces: config.interfaces))
            case "textfile": if let directory = config.textfileDirectory { made.append(TextfileCollector(directory: directory)) }
            default: break
            }
        }
        collectors = made
    }

    /// The names of the inputs that run.
    public var collectorNames: [String] { collectors.map(\.name) }

    /// Sources this machine lacks, each logged once.
    public var missingSources: Set<String> { files.reportedMissing }
    /// How many times a missing source was logged.
    public var missingReports: Int { files.reports }

    public func sample(seq: UInt64) -> Sample {
        let now = Clock.unixNanos()
        var sample = Sample(seq: seq, timestampNs: now)
        sample.extra.reserveCapacity(64)
        files.newRound()
        for collector in collectors { collector.collect(into: &sample, files: files, nowNs: now) }
        return sample
    }
}
