import Glibc
import GridMonPosix
import GridMonWire

/// Most instances (mounts, disks, interfaces) one input reports: a container host with
/// hundreds of veths must not send hundreds of gauges per second. The rest are said once.
let maxInstances = 32

/// `disk`: used percent of the filesystem at `diskPath` (the fixed `disk` gauge), and per mount
/// `disk_used_percent.<path>` and `disk_inodes_used_percent.<path>`, by statvfs(3), as `df`
/// computes them (space reserved for root counts as unavailable). Mounts are `paths`, or
/// every real filesystem (`realFilesystems`) re-read each round, so a new mount appears.
public final class DiskCollector: Collector {
    public let name = "disk"
    private let diskPath: String
    private let paths: [String]?

    public init(diskPath: String, paths: [String]?) {
        self.diskPath = diskPath
        self.paths = paths
    }

    public func collect(into sample: inout Sample, files: ProcFiles, nowNs: Int64) {
        if let usage = Self.usage(diskPath) { sample.diskPercent = usage.space } else {
            files.lacking("statvfs(\(diskPath))", SyscallError(call: "statvfs", errno: errno).description)
        }
        var chosen = paths ?? []
        if paths == nil, let text = files.proc("self/mounts") { chosen = realFilesystems(mounts(text[...])).map(\.path) }
        if chosen.count > maxInstances { files.lacking("disk: mounts past \(maxInstances)", "too many; the first \(maxInstances) are reported") }
        for path in chosen.prefix(maxInstances) {
            guard let usage = Self.usage(path) else { continue }
            sample.add("disk_used_percent." + path, usage.space)
            sample.add("disk_inodes_used_percent." + path, usage.inodes)
        }
    }

    /// Used space and inodes of the filesystem at `path`, percent; nil when statvfs fails or
    /// the filesystem has no blocks (a pseudo filesystem). Filesystems without inode
    /// accounting (btrfs reports 0 files) give 0 inodes used.
    static func usage(_ path: String) -> (space: Double, inodes: Double)? {
        var info = statvfs()
        guard statvfs(path, &info) == 0, info.f_blocks > 0 else { return nil }
        let used = Double(info.f_blocks - min(info.f_bfree, info.f_blocks))
        let usable = used + Double(info.f_bavail)
        let inodesUsed = Double(info.f_files - min(info.f_ffree, info.f_files))
        return (usable > 0 ? 100 * used / usable : 0, info.f_files > 0 ? 100 * inodesUsed / Double(info.f_files) : 0)
    }

    /// Whether statvfs can read `path` (the agent refuses a `--disk-path` it cannot report).
    public static func canReport(_ path: String) -> Bool {
        var info = statvfs()
        return statvfs(path, &info) == 0
    }
}

/// `diskio`: bytes read and written by whole disks (the fixed `disk_read`/`disk_write`), and per
/// disk `diskio_read_bytes_per_s.<name>`, `diskio_write_bytes_per_s`, `diskio_reads_per_s`,
/// `diskio_writes_per_s` and `diskio_io_util` (percent of the interval with I/O in flight,
/// iostat's %util), from /proc/diskstats. Partitions are never counted twice.
public final class DiskIOCollector: Collector {
    public let name = "diskio"
    private let devices: Set<String>?
    private var rates = CounterRates()

    public init(devices: [String]?) { self.devices = devices.map(Set.init) }

    public func collect(into sample: inout Sample, files: ProcFiles, nowNs: Int64) {
        guard let text = files.proc("diskstats") else { return }
        rates.begin(nowNs)
        defer { rates.end() }
        let all = deviceCounters(diskstats: text[...])
        let totals = diskTotals(all)
        sample.diskReadBytesPerSec = rates.rate("", totals.read) ?? 0
        sample.diskWriteBytesPerSec = rates.rate("/", totals.written) ?? 0
        for device in all.filter({ devices?.contains($0.name) ?? true }).prefix(maxInstances) {
            let d = "." + device.name
            sample.add("diskio_read_bytes_per_s" + d, rates.rate("rb" + d, device.readBytes))
            sample.add("diskio_write_bytes_per_s" + d, rates.rate("wb" + d, device.writeBytes))
            sample.add("diskio_reads_per_s" + d, rates.rate("r" + d, device.reads))
            sample.add("diskio_writes_per_s" + d, rates.rate("w" + d, device.writes))
            // ms of I/O per second of wall time: ÷ 1000 × 100 = ÷ 10.
            sample.add("diskio_io_util" + d, rates.rate("t" + d, device.ioTimeMs).map { min(100, $0 / 10) })
        }
    }
}

/// `net`: bytes over all interfaces but loopback (the fixed `net_rx`/`net_tx`), and per
/// interface `net_bytes_recv_per_s.<if>`, `net_bytes_sent_per_s`, `net_packets_recv_per_s`,
/// `net_packets_sent_per_s`, `net_err_in_per_s`, `net_err_out_per_s`, `net_drop_in_per_s`,
/// `net_drop_out_per_s`, from /proc/net/dev. Interfaces are `interfaces`, or every one but `lo`
/// that is not administratively down (/sys/class/net/<if>/operstate).
public final class NetCollector: Collector {
    public let name = "net"
    private let interfaces: Set<String>?
    private var rates = CounterRates()

    public init(interfaces: [String]?) { self.interfaces = interfaces.map(Set.init) }

    public func collect(into sample: inout Sample, files: ProcFiles, nowNs: Int64) {
        guard let text = files.proc("net/dev") else { return }
        rates.begin(nowNs)
        defer { rates.end() }
        let all = interfaceCounters(netDev: text[...]).filter { $0.name != "lo" }
        let totals = networkTotals(all)
        sample.netRxBytesPerSec = rates.rate("", totals.rx) ?? 0
        sample.netTxBytesPerSec = rates.rate("/", totals.tx) ?? 0
        let chosen = all.filter { interface in
            if let interfaces { return interfaces.contains(interface.name) }
            return files.sys("class/net/\(interface.name)/operstate").map { !$0.hasPrefix("down") } ?? true
        }
        if chosen.count > maxInstances { files.lacking("net: interfaces past \(maxInstances)", "too many; the first \(maxInstances) are reported") }
        for c in chosen.prefix(maxInstances) {
            let i = "." + c.name
            sample.add("net_bytes_recv_per_s" + i, rates.rate("br" + i, c.bytesRecv))
            sample.add("net_bytes_sent_per_s" + i, rates.rate("bs" + i, c.bytesSent))
            sample.add("net_packets_recv_per_s" + i, rates.rate("pr" + i, c.packetsRecv))
            sample.add("net_packets_sent_per_s" + i, rates.rate("ps" + i, c.packetsSent))
            sample.add("net_err_in_per_s" + i, rates.rate("ei" + i, c.errIn))
            sample.add("net_err_out_per_s" + i, rates.rate("eo" + i, c.errOut))
            sample.add("net_drop_in_per_s" + i, rates.rate("di" + i, c.dropIn))
            sample.add("net_drop_out_per_s" + i, rates.rate("do" + i, c.dropOut))
        }
    }
}
