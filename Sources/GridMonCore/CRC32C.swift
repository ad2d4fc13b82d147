import CGridMonCRC32C

/// CRC-32C (Castagnoli, polynomial 0x1EDC6F41, reflected 0x82F63B78), as used by iSCSI,
/// ext4 and LevelDB's log format. Guards GridMon's model files and outbox records.
///
/// With the CPU's CRC-32C instruction where it has one (SSE4.2 on x86-64, through the C shim:
/// every outbox record is checksummed when written and again when shipped or recovered, 6 %
/// of the server's CPU with 64-sample frames in software; issue #17). Otherwise, and as the
/// reference the tests hold it to, slicing-by-8 (Intel's "slicing-by-8" tables, Kounavis and
/// Berry 2005): eight table lookups per 8 bytes instead of one per byte. Pure; thread-safe
/// (the tables are immutable).
public enum CRC32C {
    /// Whether `checksum` runs on the CPU's instruction (read once).
    public static let usesHardware = gridmon_crc32c_hw_available() != 0

    /// table[k * 256 + i]: the CRC of byte i followed by k zero bytes.
    private static let table: [UInt32] = {
        var t = [UInt32](repeating: 0, count: 8 * 256)
        for i in 0..<256 {
            var crc = UInt32(i)
            for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
            t[i] = crc
        }
        for k in 1..<8 {
            for i in 0..<256 {
                let previous = t[(k - 1) * 256 + i]
                t[k * 256 + i] = (previous >> 8) ^ t[Int(previous & 0xFF)]
            }
        }
        return t
    }()

    /// The checksum of `bytes`, continuing from `crc` (0 to start).
    public static func checksum(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        guard usesHardware, let base = bytes.baseAddress else { return softwareChecksum(bytes, continuing: crc) }
        return gridmon_crc32c_hw(crc, base, bytes.count)
    }

    /// The same checksum by table lookups, whatever the CPU.
    static func softwareChecksum(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        var value = ~crc
        guard var p = bytes.baseAddress else { return crc }
        var remaining = bytes.count
        table.withUnsafeBufferPointer { t in
            while remaining >= 8 {
                let lo = value ^ UInt32(littleEndian: p.loadUnaligned(as: UInt32.self))
                let hi = UInt32(littleEndian: (p + 4).loadUnaligned(as: UInt32.self))
                value = t[7 * 256 + Int(lo & 0xFF)] ^ t[6 * 256 + Int((lo >> 8) & 0xFF)]
                    ^ t[5 * 256 + Int((lo >> 16) & 0xFF)] ^ t[4 * 256 + Int(lo >> 24)]
                    ^ t[3 * 256 + Int(hi & 0xFF)] ^ t[2 * 256 + Int((hi >> 8) & 0xFF)]
                    ^ t[1 * 256 + Int((hi >> 16) & 0xFF)] ^ t[Int(hi >> 24)]
                p += 8
                remaining -= 8
            }
            while remaining > 0 {
                value = t[Int((value ^ UInt32(p.load(as: UInt8.self))) & 0xFF)] ^ (value >> 8)
                p += 1
                remaining -= 1
            }
        }
        return ~value
    }

    public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0) }
    }
}
