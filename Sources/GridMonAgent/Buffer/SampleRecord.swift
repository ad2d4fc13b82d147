import GridMonCore
import GridMonWire

/// The record format of the agent's disk buffer: one sample per record. Pure.
///
/// A record is `length` (u32 little-endian) · `crc` (CRC-32C of the payload, u32 LE) ·
/// `payload`: the protobuf `Frame` of a one-sample `SampleBatch`, the wire schema itself, so
/// a buffer written by one agent version is read by the next under the same compatibility
/// rules as the network (Proto/gridmon.proto). The checksum finds torn and corrupt tails
/// after a crash; lengths are checked before any allocation.
public enum SampleRecord {
    public static let headerBytes = 8
    /// Larger records are corrupt: a sample is far below the wire's 4 MiB frame cap.
    public static let maxPayloadBytes = 4 << 20

    /// The record of `sample`.
    public static func encode(_ sample: Sample, encoder: MessageEncoder) -> [UInt8] {
        let payload = encoder.encodePayload(.samples(SampleBatch(streamID: 1, samples: [sample])))
        var record = [UInt8]()
        record.reserveCapacity(headerBytes + payload.count)
        appendLE(UInt32(payload.count), to: &record)
        appendLE(payload.withUnsafeBytes { CRC32C.checksum($0) }, to: &record)
        record += payload
        return record
    }

    /// What `decode` found at an offset.
    public enum Parsed: Equatable {
        /// A sample and the record's total size.
        case record(Sample, bytes: Int)
        /// The bytes end inside a record (a torn write, or the rest is not read yet).
        case incomplete
        /// The record is damaged: a length past the cap, a checksum mismatch, or a payload
        /// that is not a one-sample batch.
        case corrupt(String)
    }

    /// Decodes the record at the start of `bytes`.
    public static func decode(_ bytes: UnsafeRawBufferPointer) -> Parsed {
        guard bytes.count >= headerBytes else { return .incomplete }
        let length = Int(readLE(bytes, 0))
        guard length > 0, length <= maxPayloadBytes else { return .corrupt("record length \(length) outside 1 ... \(maxPayloadBytes)") }
        guard bytes.count >= headerBytes + length else { return .incomplete }
        let payload = UnsafeRawBufferPointer(rebasing: bytes[headerBytes..<(headerBytes + length)])
        guard CRC32C.checksum(payload) == readLE(bytes, 4) else { return .corrupt("checksum mismatch") }
        guard case .samples(let batch)? = try? Message(payload: payload), batch.samples.count == 1 else {
            return .corrupt("payload is not a one-sample batch")
        }
        return .record(batch.samples[0], bytes: headerBytes + length)
    }

    private static func appendLE(_ value: UInt32, to out: inout [UInt8]) {
        for shift in stride(from: 0, to: 32, by: 8) { out.append(UInt8(truncatingIfNeeded: value >> UInt32(shift))) }
    }

    private static func readLE(_ bytes: UnsafeRawBufferPointer, _ at: Int) -> UInt32 {
        (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[at + $1]) << UInt32(8 * $1) }
    }
}
