import Glibc

/// Gauge names as decoded before, so a name met again is the same `String`, not a new one.
///
/// Why: an agent sends the same ~42 extra gauge names in every sample (README, "Inputs"),
/// and every agent of a fleet sends the same ones. Made afresh per sample, each name longer
/// than 15 bytes (most of them: `net_bytes_recv_per_s.eth0`) is a heap allocation and a free,
/// and every later look at it (the detector's columns, the outbox's names table) compares or
/// hashes its bytes. Shared, a name is a retain; equal names are one object, so `==` on them
/// answers from the pointer.
///
/// A direct-mapped table: a name's slot is a hash of its length and first and last 8 bytes,
/// and a name that lands on an occupied slot replaces what was there. Bounded: `slotCount`
/// slots of names of at most `maxNameBytes` bytes (longer names are made afresh every time),
/// so a peer sending a new name in every gauge costs a hash and a compare per name more than
/// before and never more memory. A name is kept only when its string holds exactly its bytes
/// (no NUL, valid UTF-8): a hit then gives what decoding the bytes would.
///
/// Ownership and threading: one per decoding thread (`MessageDecoder` holds it); not
/// thread-safe.
final class GaugeNameCache {
    static let slotCount = 1_024
    /// Longer names are not kept (a node_exporter textfile's names rarely reach this).
    static let maxNameBytes = 96

    private var slots = [String](repeating: "", count: slotCount)
    private(set) var hits = 0
    private(set) var misses = 0

    init() {}

    /// The name in `bytes` as `decode` makes it, from the table when it is there.
    func name(_ bytes: UnsafeBufferPointer<UInt8>) -> String {
        let count = bytes.count
        guard count > 0, count <= Self.maxNameBytes, let base = bytes.baseAddress else { return Self.decode(bytes) }
        let slot = Self.slot(base, count)
        let held = slots[slot]
        if Self.holds(held, base, count) {
            hits &+= 1
            return held
        }
        misses &+= 1
        let name = Self.decode(bytes)
        if Self.holds(name, base, count) { slots[slot] = name }
        return name
    }

    /// The bytes up to the first NUL, invalid UTF-8 repaired: what protobuf-c's C string
    /// gives `String(cString:)`.
    static func decode(_ bytes: UnsafeBufferPointer<UInt8>) -> String {
        let length = bytes.firstIndex(of: 0) ?? bytes.count
        return String(decoding: UnsafeBufferPointer(rebasing: bytes[..<length]), as: UTF8.self)
    }

    /// Whether `name`'s UTF-8 is exactly these bytes.
    @inline(__always)
    private static func holds(_ name: String, _ base: UnsafePointer<UInt8>, _ count: Int) -> Bool {
        name.utf8.count == count
            && name.utf8.withContiguousStorageIfAvailable { memcmp($0.baseAddress!, base, count) == 0 } == true
    }

    /// The slot of a name of `count` (1 ... maxNameBytes) bytes: its length and first and
    /// last 8 bytes (fewer when shorter), mixed (the 64-bit finalizer of MurmurHash3).
    @inline(__always)
    private static func slot(_ base: UnsafePointer<UInt8>, _ count: Int) -> Int {
        var head: UInt64 = 0, tail: UInt64 = 0
        if count >= 8 {
            head = UnsafeRawPointer(base).loadUnaligned(as: UInt64.self)
            tail = UnsafeRawPointer(base + count - 8).loadUnaligned(as: UInt64.self)
        } else {
            for i in 0..<count { head = head << 8 | UInt64(base[i]) }
        }
        var h = head ^ (tail &* 0x9E37_79B9_7F4A_7C15) ^ UInt64(count)
        h ^= h >> 33
        h &*= 0xFF51_AFD7_ED55_8CCD
        h ^= h >> 33
        h &*= 0xC4CE_B9FE_1A85_EC53
        h ^= h >> 33
        return Int(truncatingIfNeeded: h) & (slotCount - 1)
    }
}
