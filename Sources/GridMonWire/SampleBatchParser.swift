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
/// does. `MessageDecoderTests` and the fuzz target (`Tools/fuzz-frames`) compare the two.
///
/// Pure: no allocation beyond the returned arrays and strings (the sample array sized by a
/// first pass over the batch), no state, safe from any thread. Bounds: every length is
/// checked against the bytes left in its parent before anything is read or reserved.
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
    static func parse(_ payload: UnsafeRawBufferPointer) -> SampleBatch? {
        var frame = Cursor(payload)
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

        var samples: [Sample] = []
        samples.reserveCapacity(count)
        batch = body
        while !batch.atEnd {
            if batch.byte() == batchSample {
                guard let bytes = batch.lengthDelimited(), let sample = parseSample(bytes) else { return nil }
                samples.append(sample)
            } else {
                _ = batch.varint()  // the stream id, read in the first pass
            }
        }
        return SampleBatch(streamID: streamID, samples: samples)
    }

    private static func parseSample(_ bytes: Cursor) -> Sample? {
        var cursor = bytes
        var sample = Sample(seq: 0, timestampNs: 0)
        while !cursor.atEnd {
            let tag = cursor.byte()
            // Fields 3 to 10 are the fixed gauges, all doubles (fixed64): tags 0x19 ... 0x51.
            if tag & 7 == 1, (3...10).contains(tag >> 3) {
                guard let bits = cursor.fixed64() else { return nil }
                let value = Double(bitPattern: bits)
                switch tag >> 3 {
                case 3: sample.cpuPercent = value
                case 4: sample.memoryPercent = value
                case 5: sample.diskPercent = value
                case 6: sample.load1 = value
                case 7: sample.netRxBytesPerSec = value
                case 8: sample.netTxBytesPerSec = value
                case 9: sample.diskReadBytesPerSec = value
                default: sample.diskWriteBytesPerSec = value
                }
                continue
            }
            switch tag {
            case sampleSeq:
                guard let value = cursor.varint() else { return nil }
                sample.seq = value
            case sampleTimestamp:
                guard let value = cursor.varint() else { return nil }
                sample.timestampNs = Int64(bitPattern: value)
            case sampleExtra:
                guard let gauge = cursor.lengthDelimited().flatMap(parseGauge) else { return nil }
                sample.extra.append(gauge)
            default:
                return nil
            }
        }
        return sample
    }

    private static func parseGauge(_ bytes: Cursor) -> Gauge? {
        var cursor = bytes
        var gauge = Gauge(name: "", value: 0)
        while !cursor.atEnd {
            switch cursor.byte() {
            case gaugeName:
                guard let name = cursor.lengthDelimited() else { return nil }
                gauge.name = name.cString()
            case gaugeValue:
                guard let bits = cursor.fixed64() else { return nil }
                gauge.value = Double(bitPattern: bits)
            default:
                return nil
            }
        }
        return gauge
    }
}

/// A read position in a bounded range of bytes; every read checks the bytes left first.
private struct Cursor {
    let base: UnsafeRawPointer?
    var index: Int
    let end: Int

    init(_ buffer: UnsafeRawBufferPointer) {
        base = buffer.baseAddress
        index = 0
        end = buffer.count
    }

    private init(base: UnsafeRawPointer?, index: Int, end: Int) {
        self.base = base
        self.index = index
        self.end = end
    }

    var atEnd: Bool { index >= end }

    /// The next byte, or 0 (no tag of the schema) at the end.
    mutating func byte() -> UInt8 {
        guard index < end, let base else { return 0 }
        defer { index += 1 }
        return base.load(fromByteOffset: index, as: UInt8.self)
    }

    /// A base-128 varint of at most 10 bytes, the tenth holding only bit 63; protobuf-c
    /// refuses longer ones (scan_varint), and this parser leaves the overflowing ones to it.
    mutating func varint() -> UInt64? {
        guard let base else { return nil }
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while index < end, shift < 64 {
            let byte = base.load(fromByteOffset: index, as: UInt8.self)
            index += 1
            if shift == 63 && byte > 1 { return nil }
            value |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return value }
            shift += 7
        }
        return nil
    }

    /// Eight little-endian bytes.
    mutating func fixed64() -> UInt64? {
        guard let base, end - index >= 8 else { return nil }
        defer { index += 8 }
        return UInt64(littleEndian: base.loadUnaligned(fromByteOffset: index, as: UInt64.self))
    }

    /// A length-prefixed field's bytes, as a cursor of their own. The prefix may be at most
    /// 5 bytes, as protobuf-c reads it (scan_length_prefixed_data), and the bytes must lie
    /// within this cursor's range.
    mutating func lengthDelimited() -> Cursor? {
        let start = index
        guard let length = varint(), index - start <= 5, length <= UInt64(end - index) else { return nil }
        let field = Cursor(base: base, index: index, end: index + Int(length))
        index += Int(length)
        return field
    }

    /// The bytes up to the first NUL (protobuf-c hands strings over as C strings), as a
    /// String with invalid UTF-8 repaired, as `String(cString:)` repairs it.
    func cString() -> String {
        guard let base, index < end else { return "" }
        let bytes = UnsafeRawBufferPointer(start: base + index, count: end - index)
        let length = bytes.firstIndex(of: 0) ?? bytes.count
        return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[..<length]), as: UTF8.self)
    }
}
