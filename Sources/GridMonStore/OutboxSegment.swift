import GridMonCore

/// The on-disk format of one outbox segment file, and the scan that recovers it after a
/// crash. Pure: bytes in, record ranges and a verdict out (the file I/O lives at the edge).
///
///     header   8 bytes "GMOUTBX1", u64 little-endian: the segment's first record number
///     records  u32 payload length, u32 CRC-32C of the payload, the payload
///
/// Records are appended and fsync'ed in groups; only fsync'ed records are acknowledged to
/// agents. After a crash the scan keeps every record up to the first damaged one:
/// - damage that reaches the end of the file is a torn tail (a write the crash cut short;
///   never acknowledged): the file is truncated there and the outbox carries on;
/// - damage with intact bytes after it is corruption of data that was on disk: the segment is
///   quarantined (moved aside, reported), never retried in a loop.
///
/// The segment being written carries zeros past its last record (`SegmentFile` lays them
/// down ahead so that an fdatasync need not change the file's size): an all-zero record
/// header ends the records, and damage followed only by zeros is a torn tail. No record is
/// empty (a record is an encoded `OutboxBatch`; `recordHeader` refuses empty payloads), so
/// an all-zero header (CRC-32C of nothing is 0) is never a record's. Zeros with data after
/// them are corruption, like any damage followed by data.
public enum OutboxSegment {
    public static let magic = Array("GMOUTBX1".utf8)
    public static let headerSize = 16
    public static let recordHeaderSize = 8
    /// A record longer than this is damage, not data (the outbox writes batches far smaller).
    public static let maxRecordSize = 64 * 1024 * 1024

    public enum Damage: Equatable, Sendable {
        case none
        /// Bad or partial data from `offset` to the end of the file: truncate to `offset`.
        case tornTail(offset: Int)
        /// A bad record at `offset` with more data after it: quarantine the segment.
        case corrupt(offset: Int, reason: String)
        /// Not a segment file at all (bad header): quarantine it.
        case badHeader
    }

    public struct Scan: Equatable, Sendable {
        public var firstRecord: UInt64
        /// Byte ranges of each intact record's payload, in order.
        public var payloads: [Range<Int>]
        /// Bytes that are intact (header + intact records); the file's valid length.
        public var validLength: Int
        public var damage: Damage
    }

    /// The header of a new segment whose first record will be number `firstRecord`.
    public static func header(firstRecord: UInt64) -> [UInt8] {
        var out = magic
        withUnsafeBytes(of: firstRecord.littleEndian) { out.append(contentsOf: $0) }
        return out
    }

    /// Appends one framed record to `out`.
    public static func appendRecord(_ payload: [UInt8], to out: inout [UInt8]) {
        out += recordHeader(payload)
        out.append(contentsOf: payload)
    }

    /// The 8 bytes that go before `payload` in a segment: its length and CRC-32C.
    /// `payload` is 1 to `maxRecordSize` bytes: the server's sink bounds records by
    /// construction (`OutboxSink.maxRecordLineBytes`, `maxLineBytes`) and every record is an
    /// encoded `OutboxBatch`, never empty (an empty record's header would read as the zeros
    /// that end a segment), so no peer input reaches the check.
    public static func recordHeader(_ payload: [UInt8]) -> [UInt8] {
        precondition(!payload.isEmpty && payload.count <= maxRecordSize)
        var header: [UInt8] = []
        header.reserveCapacity(recordHeaderSize)
        withUnsafeBytes(of: UInt32(payload.count).littleEndian) { header.append(contentsOf: $0) }
        withUnsafeBytes(of: CRC32C.checksum(payload).littleEndian) { header.append(contentsOf: $0) }
        return header
    }

    /// Scans a segment's bytes.
    public static func scan(_ bytes: [UInt8]) -> Scan {
        guard bytes.count >= headerSize, Array(bytes[0..<magic.count]) == magic else {
            // An empty or cut-short header is a torn creation; anything else is not ours.
            if bytes.count < headerSize && magic.starts(with: bytes.prefix(magic.count)) {
                return Scan(firstRecord: 0, payloads: [], validLength: 0, damage: .tornTail(offset: 0))
            }
            return Scan(firstRecord: 0, payloads: [], validLength: 0, damage: .badHeader)
        }
        let first = UInt64(littleEndian: bytes[8..<16].withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        var payloads: [Range<Int>] = []
        var offset = headerSize
        while offset < bytes.count {
            guard bytes.count - offset >= recordHeaderSize else {
                return Scan(firstRecord: first, payloads: payloads, validLength: offset, damage: .tornTail(offset: offset))
            }
            let length = Int(UInt32(littleEndian: bytes[offset..<offset + 4].withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }))
            let stored = UInt32(littleEndian: bytes[offset + 4..<offset + 8].withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) })
            let start = offset + recordHeaderSize
            if length == 0 && stored == 0 {
                let damage: Damage = allZero(bytes, from: offset)
                    ? .none : .corrupt(offset: offset, reason: "zeros amid records before record \(first + UInt64(payloads.count))")
                return Scan(firstRecord: first, payloads: payloads, validLength: offset, damage: damage)
            }
            if length > maxRecordSize || length > bytes.count - start {
                // Runs past the end: a cut-short final write (a huge bogus length also lands here:
                // nothing after it can be trusted to be a record boundary).
                return Scan(firstRecord: first, payloads: payloads, validLength: offset, damage: .tornTail(offset: offset))
            }
            let computed = bytes[start..<start + length].withUnsafeBytes { CRC32C.checksum($0) }
            if computed != stored {
                let damage: Damage = allZero(bytes, from: start + length)
                    ? .tornTail(offset: offset)
                    : .corrupt(offset: offset, reason: "CRC-32C mismatch in record \(first + UInt64(payloads.count))")
                return Scan(firstRecord: first, payloads: payloads, validLength: offset, damage: damage)
            }
            payloads.append(start..<start + length)
            offset = start + length
        }
        return Scan(firstRecord: first, payloads: payloads, validLength: offset, damage: .none)
    }

    /// Whether every byte from `offset` to the end is zero (true when there are none).
    private static func allZero(_ bytes: [UInt8], from offset: Int) -> Bool {
        bytes.withUnsafeBytes { raw in
            var i = offset
            // 8 bytes at a time: recovery runs this over the zeros `SegmentFile` lays down ahead
            // (less than two 1 MiB steps).
            while i + 8 <= raw.count {
                if raw.loadUnaligned(fromByteOffset: i, as: UInt64.self) != 0 { return false }
                i += 8
            }
            while i < raw.count {
                if raw[i] != 0 { return false }
                i += 1
            }
            return true
        }
    }
}
