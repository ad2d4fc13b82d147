import Glibc
import GridMonPosix
import GridMonWire

/// Reads this machine's gauges from /proc and statvfs into `Sample`s.
///
/// Rates (CPU busy, network and disk bytes per second) are differences between two reads,
/// so the first sample reports 0 for them. A file that cannot be read or parsed leaves its
/// field at 0 and is logged once, rather than stopping the agent. The edge: all file reads
/// and clocks of the agent are here; parsing is in ProcParsers.swift.
public final class SystemSampler {
    private let diskPath: String
    private let procRoot: String
    private var previousCPU: CPUTimes?
    private var previousNet: (rx: UInt64, tx: UInt64, atNs: Int64)?
    private var previousDisk: (read: UInt64, written: UInt64, atNs: Int64)?
    private var warned = Set<String>()

    /// - Parameters: `diskPath` is the filesystem whose use is reported; `procRoot` lets tests
    ///   point at a captured copy of /proc.
    public init(diskPath: String = "/", procRoot: String = "/proc") {
        self.diskPath = diskPath
        self.procRoot = procRoot
    }

    public func sample(seq: UInt64) -> Sample {
        let now = Clock.unixNanos()
        var sample = Sample(seq: seq, timestampNs: now)
        if let text = read("stat"), let cpu = CPUTimes(procStat: text[...]) {
            if let previous = previousCPU { sample.cpuPercent = cpu.percentBusy(since: previous) }
            previousCPU = cpu
        }
        if let text = read("meminfo") { sample.memoryPercent = memoryPercent(meminfo: text[...]) ?? 0 }
        if let text = read("loadavg") { sample.load1 = loadAverage1(loadavg: text[...]) ?? 0 }
        if let text = read("net/dev"), let net = networkBytes(netDev: text[...]) {
            if let p = previousNet, now > p.atNs, net.rx >= p.rx, net.tx >= p.tx {
                let seconds = Double(now - p.atNs) / 1e9
                sample.netRxBytesPerSec = Double(net.rx - p.rx) / seconds
                sample.netTxBytesPerSec = Double(net.tx - p.tx) / seconds
            }
            previousNet = (net.rx, net.tx, now)
        }
        if let text = read("diskstats") {
            let disk = diskBytes(diskstats: text[...])
            if let p = previousDisk, now > p.atNs, disk.read >= p.read, disk.written >= p.written {
                let seconds = Double(now - p.atNs) / 1e9
                sample.diskReadBytesPerSec = Double(disk.read - p.read) / seconds
                sample.diskWriteBytesPerSec = Double(disk.written - p.written) / seconds
            }
            previousDisk = (disk.read, disk.written, now)
        }
        sample.diskPercent = diskUsedPercent() ?? 0
        return sample
    }

    /// Used share of the filesystem at `diskPath`, as `df` reports it (space reserved for root
    /// counts as unavailable, not as free).
    private func diskUsedPercent() -> Double? {
        var info = statvfs()
        guard statvfs(diskPath, &info) == 0 else {
            warnOnce("statvfs", SyscallError(call: "statvfs(\(diskPath))", errno: errno).description)
            return nil
        }
        let used = Double(info.f_blocks - info.f_bfree)
        let usable = used + Double(info.f_bavail)
        return usable > 0 ? 100 * used / usable : 0
    }

    private func read(_ name: String) -> String? {
        do { return try Files.readText("\(procRoot)/\(name)") } catch {
            warnOnce(name, "\(error)")
            return nil
        }
    }

    private func warnOnce(_ key: String, _ message: String) {
        if warned.insert(key).inserted { Log.warning("gauge_unavailable", ["source": key, "error": message]) }
    }
}
