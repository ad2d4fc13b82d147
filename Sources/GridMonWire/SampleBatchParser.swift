/// Parses the one frame that matters for throughput, a `Frame` holding only a `SampleBatch`,
/// straight from the protobuf wire format into Swift values.
///
/// Why: protobuf-c's unpack walks a descriptor table per field, allocates every submessage
/// and then the values are copied again into Swift; with 64-sample frames that was 45 % of
/// the server's CPU (perf, issue #17). This parser reads the bytes once, into the `Sample`s
/// the server keeps.
///
/// It is deliberately partial. It answers only for payloads in the plain shape every GridMon
/// encoder (and any protobuf encoder of this schema) writes: the one body field of `Frame`
/// (3, `samples`) spanning the whole payload, and inside it only the fields this build knows,
/// each with its schema's wire type and a one-byte tag. Anything else — another body, an
/// unknown or repeated `Frame` field, a wrong wire type, a length past its parent, a varint
/// longer than protobuf-c accepts, an over-long length prefix — returns nil, and the caller
/// decodes with protobuf-c, which stays the definition of what a frame means (its errors, its
/// treatment of unknown fields). Within that shape the result is what protobuf-c gives:
/// scalars repeated in one message keep the last value, a string ends at its first NUL byte
/// (protobuf-c's C strings) and invalid UTF-8 is repaired with U+FFFD as `String(cString:)`
/// does. `SampleBatchParserTests` and the fuzz target (`Tools/fuzz-frames`) compare the two.
///
/// Pure: no allocation beyond the returned arrays and strings (the sample array sized by a
/// first pass over the batch, a sample's extra gauges by a look ahead), no state of its own,
/// safe from any thread; the caller's `GaugeNameCache`, when it passes one, is its thread's.
/// Bounds: every length is checked against the bytes left in its parent before anything is
/// read or reserved.
enum SampleBatchParser {
    // One-byte tags, (field number << 3) | wire type (protobuf encoding spec, "Message
    // Structure"): varint 0, fixed64 1, length-delimited 2.
    private static let frameSamples: UInt8 = 3 << 3 | 2
    private static let batchStreamID: UInt8 = 1 << 3 | 0
    private static let batchSample: UInt8 = 2 << 3 | 2
    private static let sampleSeq: UInt8 = 1 << 3 | 0
    private static let sampleTimestamp: UInt8 = 2 << 3 | 0
    private static let sampleExtra: UInt8 = 11 << 3 | 2
    private static let gaugeName: UInt8 = 1 << 3 | 2
    private static let gaugeValue: UInt8 = 2 << 3 | 1

    /// The batch in `payload`, or nil when the payload is not in the plain shape (see the
    /// type's comment); nil says nothing about whether the payload is valid.
    /// With `names`, gauge names met before are shared (`GaugeNameCache`), not made again.
    /// - Throws: `.decodesTooLarge` when its samples and their gauges' arrays would take more
    ///   than `maxBytes` (checked before each allocation; gauge names, shared or at most a few
    ///   times their own bytes, are not counted).
    static func parse(_ payload: UnsafeRawBufferPointer, names: GaugeNameCache? = nil,
                      maxBytes: Int = .max) throws(WireError) -> SampleBatch? {
        guard let base = payload.baseAddress else { return nil }
        var frame = Cursor(base.assumingMemoryBound(to: UInt8.self), count: payload.count)
        guard frame.byte() == frameSamples, let body = frame.lengthDelimited(), frame.atEnd else { return nil }

        // First pass: the batch's own fields, checked and counted, so the samples' array is
        // allocated once at its size.
        var batch = body
        var streamID: UInt32 = 0
        var count = 0
        while !batch.atEnd {
            switch batch.byte() {
            case batchStreamID:
                // protobuf-c keeps a uint32's low 32 bits of a longer varint (parse_uint32).
                guard let value = batch.varint() else { return nil }
                streamID = UInt32(truncatingIfNeeded: value)
            case batchSample:
                guard batch.lengthDelimited() != nil else { return nil }
                count += 1
            default:
                return nil
            }
        }

        var budget = maxBytes
        guard count <= budget / MemoryLayout<Sample>.stride else { throw .decodesTooLarge(length: payload.count, limit: maxBytes) }
        budget -= count * MemoryLayout<Sample>.stride

        // Each sample is parsed in its slot of the array: returned by value instead, its 88
        // bytes were stored field by field and reloaded whole, a store-forwarding stall that
        // perf put at 40 % of this function.
        do {
            let samples = try [Sample](unsafeUninitializedCapacity: count) { slots, initialized in
                batch = body
                while !batch.atEnd {
                    guard batch.byte() == batchSample else {
                        _ = batch.varint()  // the stream id, read in the first pass
                        continue
                    }
                    // Both passes read the same bytes, so the count matches; checked all the
                    // same, as a decline rather than a trap, since the bytes are a peer's.
                    guard let bytes = batch.lengthDelimited(), initialized < count, let first = slots.baseAddress
                    else { throw Declined() }
                    let slot = first + initialized
                    slot.initialize(to: Sample(seq: 0, timestampNs: 0))
                    initialized += 1
                    guard parseSample(bytes, into: &slot.pointee, names: names, budget: &budget) else {
                        throw budget < 0 ? TooLarge() : Declined()
                    }
                }
            }
            return SampleBatch(streamID: streamID, samples: samples)
        } catch is TooLarge {
            throw .decodesTooLarge(length: payload.count, limit: maxBytes)
        } catch {
            return nil
        }
    }

    private struct Declined: Error {}
    private struct TooLarge: Error {}

    /// What a sample's gauges take: the array's header once, then each gauge.
    private static let gaugeArrayHeader = 32

    /// False when the sample is declined, or when its gauges would take `budget` below 0
    /// (then set below 0, before anything past it is allocated).
    @inline(__always)
    private static func parseSample(_ bytes: Cursor, into sample: inout Sample, names: GaugeNameCache?, budget: inout Int) -> Bool {
        var cursor = bytes
        // Encoders write fields in field-number order (protobuf encoding spec, "Field Order":
        // serializers should), each at most once, and proto3 leaves out zeros: so the fields
        // are tried in that order first, each a branch taken or not that the CPU predicts,
        // where a jump table on every tag mispredicted (perf: ~20 % of this function). What
        // is left (the extra gauges, and any field out of order or repeated) goes through
        // the general loop, which treats every field the same way; the last value still wins.
        var tag = cursor.tag()
        if tag == Int(sampleSeq) {
            guard let value = cursor.varint() else { return false }
            sample.seq = value
            tag = cursor.tag()
        }
        if tag == Int(sampleTimestamp) {
            guard let value = cursor.varint() else { return false }
            sample.timestampNs = Int64(bitPattern: value)
            tag = cursor.tag()
        }
        if tag == 3 << 3 | 1 { guard cursor.double(&sample.cpuPercent) else { return false }; tag = cursor.tag() }
        if tag == 4 << 3 | 1 { guard cursor.double(&sample.memoryPercent) else { return false }; tag = cursor.tag() }
        if tag == 5 << 3 | 1 { guard cursor.double(&sample.diskPercent) else { return false }; tag = cursor.tag() }
        if tag == 6 << 3 | 1 { guard cursor.double(&sample.load1) else { return false }; tag = cursor.tag() }
        if tag == 7 << 3 | 1 { guard cursor.double(&sample.netRxBytesPerSec) else { return false }; tag = cursor.tag() }
        if tag == 8 << 3 | 1 { guard cursor.double(&sample.netTxBytesPerSec) else { return false }; tag = cursor.tag() }
        if tag == 9 << 3 | 1 { guard cursor.double(&sample.diskReadBytesPerSec) else { return false }; tag = cursor.tag() }
        if tag == 10 << 3 | 1 { guard cursor.double(&sample.diskWriteBytesPerSec) else { return false }; tag = cursor.tag() }
        while tag >= 0 {
            switch UInt8(truncatingIfNeeded: tag) {
            case sampleSeq:
                guard let value = cursor.varint() else { return false }
                sample.seq = value
            case sampleTimestamp:
                guard let value = cursor.varint() else { return false }
                sample.timestampNs = Int64(bitPattern: value)
            // Fields 3 to 10 are the fixed gauges, all doubles (fixed64).
            case 3 << 3 | 1: guard cursor.double(&sample.cpuPercent) else { return false }
            case 4 << 3 | 1: guard cursor.double(&sample.memoryPercent) else { return false }
            case 5 << 3 | 1: guard cursor.double(&sample.diskPercent) else { return false }
            case 6 << 3 | 1: guard cursor.double(&sample.load1) else { return false }
            case 7 << 3 | 1: guard cursor.double(&sample.netRxBytesPerSec) else { return false }
            case 8 << 3 | 1: guard cursor.double(&sample.netTxBytesPerSec) else { return false }
            case 9 << 3 | 1: guard cursor.double(&sample.diskReadBytesPerSec) else { return false }
            case 10 << 3 | 1: guard cursor.double(&sample.diskWriteBytesPerSec) else { return false }
            case sampleExtra:
                let stride = MemoryLayout<Gauge>.stride
                if sample.extra.isEmpty {
                    // (The fields in a row include this one, so at least one.)
                    let run = cursor.fieldsInARow(tag: Int(sampleExtra))
                    guard run <= (budget - gaugeArrayHeader) / stride else { budget = -1; return false }
                    budget -= gaugeArrayHeader
                    sample.extra.reserveCapacity(run)
                }
                guard budget >= stride else { budget = -1; return false }
                budget -= stride
                guard let bytes = cursor.lengthDelimited(), let gauge = parseGauge(bytes, names: names) else { return false }
                sample.extra.append(gauge)
            default:
                return false
            }
            tag = cursor.tag()
        }
        return true
    }

    private static func parseGauge(_ bytes: Cursor, names: GaugeNameCache?) -> Gauge? {
        var cursor = bytes
        var gauge = Gauge(name: "", value: 0)
        while !cursor.atEnd {
            switch cursor.byte() {
            case gaugeName:
                guard let name = cursor.lengthDelimited() else { return nil }
                gauge.name = names?.name(name.bytes) ?? GaugeNameCache.decode(name.bytes)
            case gaugeValue:
                guard cursor.double(&gauge.value) else { return nil }
            default:
                return nil
            }
        }
        return gauge
    }
}

/// A read position in a bounded range of bytes; every read checks the bytes left first.
private struct Cursor {
    var position: UnsafePointer<UInt8>
    let end: UnsafePointer<UInt8>

    init(_ start: UnsafePointer<UInt8>, count: Int) {
        position = start
        end = start + count
    }

    var atEnd: Bool { position >= end }

    /// The next byte, or 0 (no tag of the schema) at the end.
    @inline(__always)
    mutating func byte() -> UInt8 {
        guard position < end else { return 0 }
        defer { position += 1 }
        return position.pointee
    }

    /// The next byte as a tag, or -1 at the end (a 0 byte is no tag of the schema either, but
    /// it is a byte: the sample it sits in is declined, not cut short).
    @inline(__always)
    mutating func tag() -> Int {
        guard position < end else { return -1 }
        defer { position += 1 }
        return Int(position.pointee)
    }

    /// A base-128 varint of at most 10 bytes, the tenth holding only bit 63; protobuf-c
    /// refuses longer ones (scan_varint), and this parser leaves the overflowing ones to it.
    @inline(__always)
    mutating func varint() -> UInt64? {
        if position < end, position.pointee < 0x80 {
            defer { position += 1 }
            return UInt64(position.pointee)
        }
        if end - position >= 10 { return wideVarint() }
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while position < end, shift < 64 {
            let byte = position.pointee
            position += 1
            if shift == 63 && byte > 1 { return nil }
            value |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return value }
            shift += 7
        }
        return nil
    }

    /// `varint()` with at least 10 bytes left: the first eight are read as one word, and its
    /// 7-bit groups put together with masks and shifts instead of a loop of one branch per
    /// byte (a timestamp in nanoseconds takes 9 bytes; the loop was ~30 % of the parser).
    /// The same values and the same refusals as the loop.
    @inline(__always)
    private mutating func wideVarint() -> UInt64? {
        let word = UInt64(littleEndian: UnsafeRawPointer(position).loadUnaligned(as: UInt64.self))
        let stops = ~word & 0x8080_8080_8080_8080
        if stops != 0 {
            // The lowest byte without its continuation bit ends the varint.
            let bits = stops.trailingZeroBitCount + 1
            position += bits >> 3
            return Self.gather(word & (UInt64.max >> (64 - bits)))
        }
        // Eight bytes give 56 bits; a ninth gives 7 more, a tenth only bit 63.
        let ninth = position[8]
        let value = Self.gather(word) | UInt64(ninth & 0x7F) << 56
        if ninth < 0x80 {
            position += 9
            return value
        }
        let tenth = position[9]
        guard tenth <= 1 else { return nil }
        position += 10
        return value | UInt64(tenth) << 63
    }

    /// The low 7 bits of each byte of `word`, packed together in order (56 bits).
    @inline(__always)
    private static func gather(_ word: UInt64) -> UInt64 {
        var x = word & 0x7F7F_7F7F_7F7F_7F7F
        x = (x & 0x007F_007F_007F_007F) | (x & 0x7F00_7F00_7F00_7F00) >> 1
        x = (x & 0x0000_3FFF_0000_3FFF) | (x & 0x3FFF_0000_3FFF_0000) >> 2
        return (x & 0x0000_0000_0FFF_FFFF) | (x & 0x0FFF_FFFF_0000_0000) >> 4
    }

    /// Eight little-endian bytes as a double's bits, into `value`; false if fewer are left.
    @inline(__always)
    mutating func double(_ value: inout Double) -> Bool {
        guard end - position >= 8 else { return false }
        value = Double(bitPattern: UInt64(littleEndian: UnsafeRawPointer(position).loadUnaligned(as: UInt64.self)))
        position += 8
        return true
    }

    /// A length-prefixed field's bytes, as a cursor of their own. The prefix may be at most
    /// 5 bytes, as protobuf-c reads it (scan_length_prefixed_data), and the bytes must lie
    /// within this cursor's range.
    @inline(__always)
    mutating func lengthDelimited() -> Cursor? {
        let start = position
        guard let length = varint(), position - start <= 5, length <= UInt64(end - position) else { return nil }
        let field = Cursor(position, count: Int(length))
        position += Int(length)
        return field
    }

    /// The bytes left.
    var bytes: UnsafeBufferPointer<UInt8> { UnsafeBufferPointer(start: position, count: max(0, end - position)) }

    /// With the cursor just past a length-delimited field's tag: how many fields of that
    /// `tag` come in a row from here, this one included (the extra gauges, so a sample's
    /// array of them is allocated once, not grown seven times for an agent's 42). Reads
    /// lengths only; stops at any other field or a bad length.
    func fieldsInARow(tag: Int) -> Int {
        var cursor = self
        var count = 0
        while cursor.lengthDelimited() != nil {
            count += 1
            guard cursor.tag() == tag else { break }
        }
        return count
    }
}
