/// Parsers for the Linux /proc files the agent reads. Pure: text in, numbers out, so each is
/// unit-tested on captured file contents. Formats: proc(5).

/// Cumulative CPU time from the first line of /proc/stat ("cpu  user nice system idle iowait
/// irq softirq steal ..."), in clock ticks.
public struct CPUTimes: Equatable, Sendable {
    public var busy: UInt64
    public var total: UInt64

    public init(busy: UInt64, total: UInt64) {
        self.busy = busy
        self.total = total
    }

    public init?(procStat text: Substring) {
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("cpu ") }) else { return nil }
        let fields = line.split(separator: " ").dropFirst().compactMap { UInt64($0) }
        guard fields.count >= 4 else { return nil }
        // idle + iowait are not busy; guest time is already inside user/nice, so stop at steal.
        let counted = Array(fields.prefix(8))
        let idle = counted[3] + (counted.count > 4 ? counted[4] : 0)
        total = counted.reduce(0, +)
        busy = total - idle
    }

    /// Busy percent over the interval from `earlier` to `self`.
    public func percentBusy(since earlier: CPUTimes) -> Double {
        guard total > earlier.total, busy >= earlier.busy else { return 0 }
        return min(100, 100 * Double(busy - earlier.busy) / Double(total - earlier.total))
    }
}

/// Memory in use, percent: (MemTotal − MemAvailable) / MemTotal, from /proc/meminfo.
public func memoryPercent(meminfo text: Substring) -> Double? {
    var total: Double?
    var available: Double?
    for line in text.split(separator: "\n") {
        let parts = line.split(separator: " ", omittingEmptySubsequences: true)
        guard parts.count >= 2, let value = Double(parts[1]) else { continue }
        if parts[0] == "MemTotal:" { total = value }
        if parts[0] == "MemAvailable:" { available = value }
    }
    guard let total, let available, total > 0 else { return nil }
    return 100 * (total - available) / total
}

/// The 1-minute load average: the first field of /proc/loadavg.
public func loadAverage1(loadavg text: Substring) -> Double? {
    text.split(separator: " ").first.flatMap { Double($0) }
}

/// Bytes received and transmitted over all interfaces but loopback, from /proc/net/dev.
public func networkBytes(netDev text: Substring) -> (rx: UInt64, tx: UInt64)? {
    var rx: UInt64 = 0
    var tx: UInt64 = 0
    var any = false
    for line in text.split(separator: "\n") {
        guard let colon = line.firstIndex(of: ":") else { continue }
        let name = line[..<colon].trimmingCharacters(in: " ")
        if name == "lo" || name.isEmpty { continue }
        let fields = line[line.index(after: colon)...].split(separator: " ").compactMap { UInt64($0) }
        guard fields.count >= 9 else { continue }
        rx += fields[0]
        tx += fields[8]
        any = true
    }
    return any ? (rx, tx) : (0, 0)
}

/// Bytes read and written by whole disks (not partitions, loop or RAM devices), from
/// /proc/diskstats; sectors there are always 512 bytes.
public func diskBytes(diskstats text: Substring) -> (read: UInt64, written: UInt64) {
    var read: UInt64 = 0
    var written: UInt64 = 0
    for line in text.split(separator: "\n") {
        let f = line.split(separator: " ")
        guard f.count >= 10, let sectorsRead = UInt64(f[5]), let sectorsWritten = UInt64(f[9]) else { continue }
        let name = String(f[2])
        if isWholeDisk(name) {
            read += sectorsRead * 512
            written += sectorsWritten * 512
        }
    }
    return (read, written)
}

/// sda, vda, xvda, nvme0n1, mmcblk0 — but not sda1, nvme0n1p1, loop0, ram0, dm-0, sr0.
func isWholeDisk(_ name: String) -> Bool {
    if name.hasPrefix("loop") || name.hasPrefix("ram") || name.hasPrefix("dm-") || name.hasPrefix("sr") || name.hasPrefix("zram") { return false }
    if name.hasPrefix("nvme") || name.hasPrefix("mmcblk") { return !name.dropFirst(4).contains("p") }
    if name.hasPrefix("sd") || name.hasPrefix("vd") || name.hasPrefix("xvd") || name.hasPrefix("hd") {
        return !(name.last?.isNumber ?? true)
    }
    return false
}

extension Substring {
    func trimmingCharacters(in set: Character) -> String {
        var s = self
        while s.first == set { s.removeFirst() }
        while s.last == set { s.removeLast() }
        return String(s)
    }
}
