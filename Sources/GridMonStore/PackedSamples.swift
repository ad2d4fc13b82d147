import GridMonWire

/// One stream's samples as the outbox keeps them (record version 3, issue #17 item 2): binary,
/// each extra gauge's name once per record; line protocol is made from them only when they are
/// shipped or exported (`appendLines`). Pure value type.
///
/// Why: the server wrote every sample as ~260 bytes of line protocol (1.2 KB with an agent's 42
/// extra gauges) on the ack path, formatting nine to fifty floats as text that the embedded
/// store alone never reads; a packed sample is 27 to 91 bytes plus 1 to 9 per extra gauge (2
/// more out of the names table's order), and its record carries each extra name once.
///
/// Per sample, little-endian: i64 timestamp (ns), f64 anomaly score, u8 flags (bit 0:
/// anomalous; bit 1: the extra gauges are the first names of the table, in order), 8 values
/// of the fixed gauges (cpu, memory, disk, load1, net_rx, net_tx, disk_read, disk_write), u16
/// extra count, then per extra gauge its value, preceded by its u16 name index unless bit 1 is
/// set. A value is a varint u: u even, the integer zigzag⁻¹(u / 2) (a whole number of at most
/// 2⁵³, so exact as a Double: 1 byte up to ±31, 2 up to ±4095); u = 1, the f64 that follows.
/// (An agent sends its gauges in the same order every time, and most are whole numbers: with
/// indices and every value as f64, an agent's 1-sample record at 1 s was 9 % larger than the
/// version-2 text record.)
///
/// What line protocol cannot carry is left out when a sample is packed and counted in the
/// caller's `LineProtocolDrops`, exactly as `SystemMetrics.appendLineTail` counts it: extra
/// gauges with a reserved name (silently, as there), an unwritable or repeated name, or a
/// non-finite value. Non-finite fixed gauges and scores are kept (the format has a slot for
/// them), counted here, and skipped when lines are made — so the lines are byte for byte what
/// `appendLineTail` writes for the same sample.
public struct PackedSamples: Sendable, Equatable {
    /// Fewest bytes one sample takes (every fixed gauge a small whole number, no extra gauge).
    public static let minimumSampleBytes = 8 + 8 + 1 + 8 + 2
    /// Most distinct extra gauge names in one record (the u16 index); further new names are
    /// left out as bad names.
    public static let maxNames = Int(UInt16.max)

    public private(set) var names: [String] = []
    public private(set) var bytes: [UInt8] = []
    public private(set) var count = 0
    /// The number of each name of `names[..<indexed]`: made only when a name is looked up
    /// out of order (a sample whose gauges are the table's first names, in order, the usual
    /// case, needs none).
    private var nameIndex: [String: UInt16] = [:]
    private var indexed = 0
    /// Sum of the names' UTF-8 lengths (for `byteCount`).
    private var nameBytes = 0
    /// Scratch: the extra gauges kept from the sample being packed.
    private var kept: [(name: UInt16, value: Double)] = []

    public init() {}

    /// Room for about `samples` samples of the eight gauges.
    public mutating func reserve(samples: Int) { bytes.reserveCapacity(samples * 64) }

    /// Samples already packed, read back (`OutboxBatch` decoding).
    init(names: [String], bytes: [UInt8], count: Int) {
        self.names = names
        self.bytes = bytes
        self.count = count
        nameBytes = names.reduce(0) { $0 + $1.utf8.count }
    }

    public static func == (a: PackedSamples, b: PackedSamples) -> Bool {
        a.names == b.names && a.bytes == b.bytes && a.count == b.count  // (`kept` is scratch)
    }

    /// Bytes this takes in a record: the samples and the names table.
    public var byteCount: Int { bytes.count + nameBytes + 2 * names.count + 4 }

    public mutating func removeAll() {
        names.removeAll()
        nameIndex.removeAll()
        indexed = 0
        bytes.removeAll(keepingCapacity: true)
        count = 0
        nameBytes = 0
    }

    /// Packs one sample with its verdict.
    public mutating func append(_ sample: Sample, score: Double, anomalous: Bool, drops: inout LineProtocolDrops) {
        var plan = ExtraGaugePlan()
        append(sample, score: score, anomalous: anomalous, drops: &drops, plan: &plan)
    }

    /// Packs one sample with its verdict, its extra gauges judged by `plan` (kept by the
    /// caller from one sample of a stream to the next, so the same names are judged once).
    public mutating func append(_ sample: Sample, score: Double, anomalous: Bool, drops: inout LineProtocolDrops,
                                plan: inout ExtraGaugePlan) {
        // Kept, counted, and skipped when lines are made.
        func countNonFinite(_ value: Double) { if !value.isFinite { drops.nonFiniteFields += 1 } }
        countNonFinite(sample.cpuPercent)
        countNonFinite(sample.memoryPercent)
        countNonFinite(sample.diskPercent)
        countNonFinite(sample.load1)
        countNonFinite(sample.netRxBytesPerSec)
        countNonFinite(sample.netTxBytesPerSec)
        countNonFinite(sample.diskReadBytesPerSec)
        countNonFinite(sample.diskWriteBytesPerSec)
        countNonFinite(score)
        kept.removeAll(keepingCapacity: true)
        let extras = sample.extra
        // The same checks, in the same order, as `SystemMetrics.appendLineTail`.
        plan.update(for: extras)
        var inOrder = true
        for (index, gauge) in extras.enumerated() {
            switch plan.verdicts[index] {
            case .reserved: continue
            case .badName: drops.badNames += 1; continue
            case .keep: break
            }
            guard gauge.value.isFinite else { drops.nonFiniteFields += 1; continue }
            guard kept.count < Int(UInt16.max), let name = nameNumber(gauge.name, at: kept.count, inOrder: inOrder) else {
                drops.badNames += 1
                continue
            }
            if Int(name) != kept.count { inOrder = false }
            kept.append((name, gauge.value))
        }

        // Room for the most this sample can take, written through a pointer and cut to what
        // it took: one append instead of one per byte (each a uniqueness and a capacity
        // check; 13 % of the server's CPU with 64-sample frames into the outbox, perf).
        let start = bytes.count
        let room = Self.maxFixedBytes + 2 + kept.count * (2 + Self.maxValueBytes)
        var zeroed = 0
        while zeroed < room {  // (a memcpy per block: `repeatElement` went element by element)
            let n = min(room - zeroed, Self.zeros.count)
            bytes.append(contentsOf: Self.zeros[..<n])
            zeroed += n
        }
        let used = bytes.withUnsafeMutableBufferPointer { buffer in
            var w = ByteWriter(at: buffer.baseAddress! + start)
            w.put(sample.timestampNs)
            w.put(score.bitPattern)
            w.put(UInt8(anomalous ? 1 : 0) | (inOrder ? 2 : 0))
            w.value(sample.cpuPercent)
            w.value(sample.memoryPercent)
            w.value(sample.diskPercent)
            w.value(sample.load1)
            w.value(sample.netRxBytesPerSec)
            w.value(sample.netTxBytesPerSec)
            w.value(sample.diskReadBytesPerSec)
            w.value(sample.diskWriteBytesPerSec)
            w.put(UInt16(kept.count))
            for gauge in kept {
                if !inOrder { w.put(gauge.name) }
                w.value(gauge.value)
            }
            return w.offset
        }
        bytes.removeLast(room - used)
        count += 1
    }

    private static let zeros = [UInt8](repeating: 0, count: 1024)
    /// Most bytes one value takes: a 1 and its f64 (a varint of a whole number ≤ 2⁵³ takes 8).
    private static let maxValueBytes = 9
    /// Most bytes a sample takes before its extra count: timestamp, score, flags, 8 values.
    private static let maxFixedBytes = 8 + 8 + 1 + 8 * maxValueBytes

    /// Drops the last `bytes.count - length` bytes: the sample packed last (the caller found
    /// it too large). Names it added stay in the table (unused).
    public mutating func truncate(to length: Int) {
        guard length < bytes.count else { return }
        bytes.removeSubrange(length...)
        count -= 1
    }

    /// The number of `name` in the table, entered if new; nil when the table is full.
    /// `position` is the gauge's place among the sample's kept ones and `inOrder` whether
    /// those before it were the table's first names in order: then the name is looked for at
    /// that place first, and is new if the table ends there (a sample's kept names are
    /// distinct), with no hashing either way.
    private mutating func nameNumber(_ name: String, at position: Int, inOrder: Bool) -> UInt16? {
        if inOrder {
            if position < names.count, names[position] == name { return UInt16(position) }
            if position == names.count { return enter(name) }
        }
        while indexed < names.count {
            nameIndex[names[indexed]] = UInt16(indexed)
            indexed += 1
        }
        if let found = nameIndex[name] { return found }
        return enter(name)
    }

    private mutating func enter(_ name: String) -> UInt16? {
        guard names.count < Self.maxNames else { return nil }
        names.append(name)
        nameBytes += name.utf8.count
        return UInt16(names.count - 1)
    }

    /// Writes a sample's bytes where `append` made room for them.
    private struct ByteWriter {
        let base: UnsafeMutablePointer<UInt8>
        private(set) var offset = 0

        init(at base: UnsafeMutablePointer<UInt8>) { self.base = base }

        /// Little-endian.
        @inline(__always)
        mutating func put<T: FixedWidthInteger>(_ value: T) {
            UnsafeMutableRawPointer(base + offset).storeBytes(of: value.littleEndian, as: T.self)
            offset += MemoryLayout<T>.size
        }

        /// A whole number of at most 2⁵³ as an even varint, anything else (fractions, -0,
        /// NaN, ±Inf) as 1 and its f64.
        @inline(__always)
        mutating func value(_ value: Double) {
            if value.magnitude <= 9_007_199_254_740_992, value.rounded(.towardZero) == value, value.sign == .plus || value != 0 {
                let n = Int64(value)
                var u = UInt64(bitPattern: (n << 1) ^ (n >> 63)) << 1
                while u >= 0x80 {
                    base[offset] = UInt8(truncatingIfNeeded: u) | 0x80
                    offset += 1
                    u >>= 7
                }
                base[offset] = UInt8(u)
                offset += 1
            } else {
                base[offset] = 1
                offset += 1
                put(value.bitPattern)
            }
        }
    }

    /// Appends each sample's line (`series` then fields and timestamp), as
    /// `SystemMetrics.appendLineTail` writes it. Stops at the first sample that does not
    /// parse (records are CRC-checked, so only a format bug gets there) and returns false.
    @discardableResult
    public func appendLines(series: [UInt8], to out: inout [UInt8]) -> Bool {
        var reader = Reader(bytes: bytes)
        var ignored = LineProtocolDrops()  // counted when packed
        var sample = Sample(seq: 0, timestampNs: 0)
        for _ in 0..<count {
            guard let timestamp = reader.integer(Int64.self), let score = reader.double(), let flags = reader.integer(UInt8.self),
                  let cpu = reader.value(), let memory = reader.value(), let disk = reader.value(), let load1 = reader.value(),
                  let rx = reader.value(), let tx = reader.value(), let read = reader.value(), let write = reader.value(),
                  let extras = reader.integer(UInt16.self) else { return false }
            sample.timestampNs = timestamp
            sample.cpuPercent = cpu
            sample.memoryPercent = memory
            sample.diskPercent = disk
            sample.load1 = load1
            sample.netRxBytesPerSec = rx
            sample.netTxBytesPerSec = tx
            sample.diskReadBytesPerSec = read
            sample.diskWriteBytesPerSec = write
            sample.extra.removeAll(keepingCapacity: true)
            let inOrder = flags & 2 != 0
            for i in 0..<Int(extras) {
                guard let name = inOrder ? UInt16(truncatingIfNeeded: i) : reader.integer(UInt16.self), Int(name) < names.count,
                      let value = reader.value() else { return false }
                sample.extra.append(Gauge(name: names[Int(name)], value: value))
            }
            out.append(contentsOf: series)
            SystemMetrics.appendLineTail((sample, score, flags & 1 == 1), to: &out, drops: &ignored)
        }
        return reader.isAtEnd
    }

    /// Bounds-checked little-endian reads.
    private struct Reader {
        let bytes: [UInt8]
        var position = 0
        var isAtEnd: Bool { position == bytes.count }

        mutating func integer<T: FixedWidthInteger>(_: T.Type) -> T? {
            let size = MemoryLayout<T>.size
            guard bytes.count - position >= size else { return nil }
            defer { position += size }
            return bytes.withUnsafeBytes { T(littleEndian: $0.loadUnaligned(fromByteOffset: position, as: T.self)) }
        }

        mutating func double() -> Double? { integer(UInt64.self).map(Double.init(bitPattern:)) }

        /// A value as `ByteWriter.value` wrote it.
        mutating func value() -> Double? {
            var u: UInt64 = 0
            var shift: UInt64 = 0
            while true {
                guard position < bytes.count, shift < 64 else { return nil }
                let byte = bytes[position]
                position += 1
                u |= UInt64(byte & 0x7F) << shift
                if byte < 0x80 { break }
                shift += 7
            }
            if u == 1 { return double() }
            guard u & 1 == 0 else { return nil }
            let z = u >> 1
            return Double(Int64(bitPattern: (z >> 1) ^ (0 &- (z & 1))))
        }
    }
}
