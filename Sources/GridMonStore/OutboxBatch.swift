/// The payload of one outbox record: samples of one stream, as line protocol, with what the
/// server needs to rebuild its state on start (tenant, node, highest seq). Pure;
/// little-endian binary.
///
/// Version 2 (written now) stores the series key — measurement, host, tenant and the node's
/// labels, escaped — once per record, and each line without it: labels were repeated on every
/// line, so 1 MB of samples with a large label set took 198 MB on disk (issue #10, defect 8).
///
///     u8 version (2), u16 tenant length, tenant, u16 node length, node,
///     u64 highest seq, u32 sample count, u32 series length, series,
///     u32 body length, body (each line without its series key: " fields timestamp\n")
///
/// Version 1 (read, for outboxes written before) stores whole lines:
///
///     u8 version (1), u16 tenant length, tenant, u16 node length, node,
///     u64 highest seq, u32 sample count, u32 lines length, lines
///
/// Version 3 (written now, issue #17 item 2) stores the samples themselves, packed
/// (`PackedSamples`), and makes the lines only when they are read:
///
///     u8 version (3), u16 tenant length, tenant, u16 node length, node,
///     u64 highest seq, u32 sample count, u32 series length, series,
///     u32 name count, (u16 length, name) × count, u32 packed samples, u32 length, packed bytes
///
/// `lines` is always the whole line protocol (series key put back in front of every line).
public struct OutboxBatch: Sendable, Equatable {
    public var tenant: String
    public var node: String
    public var highestSeq: UInt64
    public var sampleCount: Int
    /// The series key shared by every line (empty in a version-1 record).
    public var series: [UInt8]
    /// The lines without their series key (version 2), or whole lines (version 1, `series` empty);
    /// empty in a version-3 record.
    public var body: [UInt8]
    /// The samples of a version-3 record (nil in versions 1 and 2).
    public var packed: PackedSamples?

    /// A version-2 batch: `body` holds lines that each follow `series`.
    public init(tenant: String, node: String, highestSeq: UInt64, sampleCount: Int, series: [UInt8], body: [UInt8]) {
        self.tenant = tenant
        self.node = node
        self.highestSeq = highestSeq
        self.sampleCount = sampleCount
        self.series = series
        self.body = body
    }

    /// A version-3 batch: `packed` samples, whose lines each follow `series`.
    public init(tenant: String, node: String, highestSeq: UInt64, sampleCount: Int, series: [UInt8], packed: PackedSamples) {
        self.init(tenant: tenant, node: node, highestSeq: highestSeq, sampleCount: sampleCount, series: series, body: [])
        self.packed = packed
    }

    /// A batch of whole lines (no shared series key).
    public init(tenant: String, node: String, highestSeq: UInt64, sampleCount: Int, lines: [UInt8]) {
        self.init(tenant: tenant, node: node, highestSeq: highestSeq, sampleCount: sampleCount, series: [], body: lines)
    }

    /// The whole line protocol: every body line with the series key in front. Made on each
    /// call (a version-3 record formats its samples): call once per record.
    public var lines: [UInt8] {
        if let packed {
            var out: [UInt8] = []
            out.reserveCapacity(packed.count * (series.count + 160))
            if !series.isEmpty { packed.appendLines(series: series, to: &out) }
            return out
        }
        guard !series.isEmpty else { return body }
        var out: [UInt8] = []
        out.reserveCapacity(body.count + sampleCount * series.count)
        var start = body.startIndex
        while start < body.endIndex {
            let end = body[start...].firstIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? body.endIndex
            out += series
            out += body[start..<end]
            start = end
        }
        return out
    }

    public struct DecodeError: Error, Equatable, CustomStringConvertible {
        public var description: String
    }

    public func encode() -> [UInt8] {
        var out: [UInt8] = [packed == nil ? 2 : 3]
        out.reserveCapacity(32 + tenant.utf8.count + node.utf8.count + series.count + body.count + (packed?.byteCount ?? 0))
        putText(&out, tenant)
        putText(&out, node)
        put(&out, highestSeq)
        put(&out, UInt32(sampleCount))
        put(&out, UInt32(series.count)); out += series
        if let packed {
            put(&out, UInt32(packed.names.count))
            for name in packed.names { putText(&out, name) }
            put(&out, UInt32(packed.count))
            put(&out, UInt32(packed.bytes.count)); out += packed.bytes
            return out
        }
        put(&out, UInt32(body.count)); out += body
        return out
    }

    private func put<T: FixedWidthInteger>(_ out: inout [UInt8], _ value: T) {
        withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) }
    }

    /// A u16 length and `text`'s UTF-8, cut at 65,535 bytes (node ids, tenants and gauge
    /// names kept are far shorter). Copied from the string's own storage: through an array
    /// made per name, a 1-sample record of an agent's 42 gauge names cost 42 allocations
    /// (issue #17, perf with `Tools/bench-server --idle-extra-gauges 42`).
    private func putText(_ out: inout [UInt8], _ text: String) {
        var text = text  // (`withUTF8` makes a string contiguous first if it is not)
        text.withUTF8 { bytes in
            let count = min(bytes.count, Int(UInt16.max))
            put(&out, UInt16(count))
            out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[..<count]))
        }
    }

    /// Reads a record's fields in order; every read is bounds-checked.
    private struct Reader {
        let bytes: ArraySlice<UInt8>
        var position: Int
        init(_ bytes: ArraySlice<UInt8>) {
            self.bytes = bytes
            position = bytes.startIndex
        }
        var isAtEnd: Bool { position == bytes.endIndex }

        mutating func take(_ count: Int) throws(DecodeError) -> ArraySlice<UInt8> {
            guard count >= 0, bytes.endIndex - position >= count else { throw DecodeError(description: "outbox batch truncated") }
            defer { position += count }
            return bytes[position..<position + count]
        }

        mutating func integer<T: FixedWidthInteger>(_: T.Type) throws(DecodeError) -> T {
            let slice = try take(MemoryLayout<T>.size)
            return slice.reversed().reduce(T(0)) { $0 << 8 | T($1) }
        }

        /// The fields every version starts with: version, tenant, node, highest seq, sample count.
        mutating func header() throws(DecodeError) -> (version: UInt8, tenant: String, node: String, highestSeq: UInt64, sampleCount: Int) {
            let version = try integer(UInt8.self)
            guard (1...3).contains(version) else { throw DecodeError(description: "unknown outbox batch version \(version)") }
            let tenant = String(decoding: try take(Int(try integer(UInt16.self))), as: UTF8.self)
            let node = String(decoding: try take(Int(try integer(UInt16.self))), as: UTF8.self)
            return (version, tenant, node, try integer(UInt64.self), Int(try integer(UInt32.self)))
        }
    }

    /// A record's tenant, node and highest seq, without reading its samples (what recovery
    /// needs of every record at start: decoding a version-3 record's names table for each
    /// would cost an allocation per extra gauge name).
    public static func header(decoding bytes: ArraySlice<UInt8>) throws(DecodeError) -> (tenant: String, node: String, highestSeq: UInt64) {
        var reader = Reader(bytes)
        let h = try reader.header()
        return (h.tenant, h.node, h.highestSeq)
    }

    public init(decoding bytes: ArraySlice<UInt8>) throws(DecodeError) {
        var reader = Reader(bytes)
        func take(_ count: Int) throws(DecodeError) -> ArraySlice<UInt8> { try reader.take(count) }
        func integer<T: FixedWidthInteger>(_ type: T.Type) throws(DecodeError) -> T { try reader.integer(type) }
        let version: UInt8
        (version, tenant, node, highestSeq, sampleCount) = try reader.header()
        if version >= 2 {
            let seriesLength = Int(try integer(UInt32.self))
            series = Array(try take(seriesLength))
        } else {
            series = []
        }
        if version == 3 {
            let nameCount = Int(try integer(UInt32.self))
            guard nameCount <= PackedSamples.maxNames else { throw DecodeError(description: "outbox batch claims \(nameCount) names") }
            var names: [String] = []
            names.reserveCapacity(nameCount)
            for _ in 0..<nameCount { names.append(String(decoding: try take(Int(try integer(UInt16.self))), as: UTF8.self)) }
            let count = Int(try integer(UInt32.self))
            let bytes = Array(try take(Int(try integer(UInt32.self))))
            guard count <= bytes.count / PackedSamples.minimumSampleBytes else { throw DecodeError(description: "outbox batch claims \(count) samples in \(bytes.count) bytes") }
            packed = PackedSamples(names: names, bytes: bytes, count: count)
            body = []
        } else {
            let bodyLength = Int(try integer(UInt32.self))
            body = Array(try take(bodyLength))
        }
        guard reader.isAtEnd else { throw DecodeError(description: "outbox batch has trailing bytes") }
    }
}
