/// /proc/diskstats: I/O counters per block device. Pure. Format: the kernel's
/// Documentation/admin-guide/iostats.rst.

/// Cumulative counters of one block device.
public struct DeviceCounters: Equatable, Sendable {
    public var name: String
    public var reads: UInt64, readBytes: UInt64
    public var writes: UInt64, writeBytes: UInt64
    /// Milliseconds the device had I/O in flight (iostat's %util numerator).
    public var ioTimeMs: UInt64
}

/// Every whole disk of /proc/diskstats (not partitions, loop, RAM or device-mapper devices,
/// whose I/O a whole disk already counts), in file order. Sectors there are always 512 bytes.
public func deviceCounters(diskstats text: Substring) -> [DeviceCounters] {
    var result: [DeviceCounters] = []
    for line in text.split(separator: "\n") {
        let f = line.split(separator: " ")
        guard f.count >= 13, isWholeDisk(String(f[2])),
              let reads = UInt64(f[3]), let sectorsRead = UInt64(f[5]),
              let writes = UInt64(f[7]), let sectorsWritten = UInt64(f[9]), let ioTime = UInt64(f[12]) else { continue }
        result.append(DeviceCounters(name: String(f[2]), reads: reads, readBytes: sectorsRead &* 512,
                                     writes: writes, writeBytes: sectorsWritten &* 512, ioTimeMs: ioTime))
    }
    return result
}

/// Bytes read and written by whole disks (the fixed gauges).
public func diskTotals(_ devices: [DeviceCounters]) -> (read: UInt64, written: UInt64) {
    devices.reduce((0, 0)) { ($0.0 &+ $1.readBytes, $0.1 &+ $1.writeBytes) }
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
