/// Why bytes from a peer could not be decoded.
///
/// Every case is final for the connection it came from (the byte stream cannot be resynced),
/// carries enough to write a useful log line, and has a stable `kind` for metric labels.
public enum WireError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The first bytes were not the GridMon preface. `received` holds what came, up to 8 bytes.
    case badPreface(received: [UInt8])
    /// The magic matched but the version byte is one this build does not speak.
    case unsupportedVersion(UInt8)
    /// A frame's flag byte was not 0; v1 negotiates no compression.
    case badFlag(UInt8)
    /// A frame announced a payload larger than the receiver's limit; nothing was allocated.
    case oversizeFrame(length: UInt32, limit: Int)
    /// The stream ended inside the preface, a frame header or a payload.
    case truncated(part: String, have: Int, need: Int)
    /// The payload is not a valid protobuf `Frame` (bad varint, wrong wire type, short field...).
    case unparseableProtobuf(length: Int)
    /// A valid `Frame` whose body holds no message at all.
    case missingBody
    /// A valid `Frame` whose body is a message this version does not know (a newer peer).
    case unknownBody(fieldNumber: UInt32)
    /// A frame within the size limit whose fields would decode to more than `limit` bytes of
    /// values (a peer's thousands of empty samples or gauges: 2 bytes each on the wire, up
    /// to 128 in memory); refused before they are built.
    case decodesTooLarge(length: Int, limit: Int)
    /// The decoder already failed or its frame handler threw; the connection must be closed.
    case decoderFailed

    /// A short stable name for counters and logs, e.g. `oversize_frame`.
    public var kind: String {
        switch self {
        case .badPreface: "bad_preface"
        case .unsupportedVersion: "unsupported_version"
        case .badFlag: "bad_flag"
        case .oversizeFrame: "oversize_frame"
        case .truncated: "truncated"
        case .unparseableProtobuf: "unparseable_protobuf"
        case .missingBody: "missing_body"
        case .unknownBody: "unknown_body"
        case .decodesTooLarge: "decodes_too_large"
        case .decoderFailed: "decoder_failed"
        }
    }

    public var description: String {
        switch self {
        case .badPreface(let received):
            // A TLS record (handshake 0x16 or alert 0x15, version 0x03 0x0n): one side speaks TLS.
            let tls = received.count >= 2 && (received[0] == 0x16 || received[0] == 0x15) && received[1] == 0x03
            let hint = Self.looksLikeHTTP(received) ? " (looks like an HTTP request: wrong port?)"
                : tls ? " (a TLS record: the peer speaks TLS and this side does not; use TLS on both ends or on neither)" : ""
            return "bad connection preface: expected \"GRIDMON\\x01\", got \(Self.quote(received))\(hint)"
        case .unsupportedVersion(let version):
            return "unsupported protocol version \(version) in preface (this build speaks \(Preface.version))"
        case .badFlag(let flag):
            return "bad frame flag byte 0x\(String(flag, radix: 16)) (only 0, uncompressed, is valid in protocol v1)"
        case .oversizeFrame(let length, let limit):
            return "frame of \(length) bytes exceeds the limit of \(limit) bytes"
        case .truncated(let part, let have, let need):
            return "connection closed inside a \(part): got \(have) of \(need) bytes"
        case .unparseableProtobuf(let length):
            return "frame payload of \(length) bytes is not a valid gridmon.v1.Frame protobuf"
        case .missingBody:
            return "frame holds no message (empty Frame.body)"
        case .unknownBody(let field):
            return "frame holds an unknown message (Frame field \(field)); peer is newer than this build"
        case .decodesTooLarge(let length, let limit):
            return "frame payload of \(length) bytes decodes to more than \(limit) bytes of samples and gauges "
                + "(thousands of empty ones?); send fewer per frame"
        case .decoderFailed:
            return "decoder already failed; the connection must be closed"
        }
    }

    private static func looksLikeHTTP(_ bytes: [UInt8]) -> Bool {
        let text = String(decoding: bytes, as: UTF8.self)
        return ["GET ", "POST", "PUT ", "HEAD", "PRI ", "DELE", "OPTI", "PATC", "CONN"].contains {
            text.hasPrefix($0)
        }
    }

    /// Printable ASCII as is, everything else as \xNN, so a log line stays one line.
    private static func quote(_ bytes: [UInt8]) -> String {
        var out = "\""
        for byte in bytes {
            if byte >= 0x20 && byte < 0x7f && byte != UInt8(ascii: "\"") && byte != UInt8(ascii: "\\") {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                out += "\\x" + (byte < 16 ? "0" : "") + String(byte, radix: 16)
            }
        }
        return out + "\""
    }
}
