import CZlib

/// gzip (RFC 1952) compression of request bodies, for `Content-Encoding: gzip` writes.
///
/// Line protocol compresses 5–10× (repeated measurement, tag and field keys), which matters
/// when InfluxDB is across a network; on loopback it only costs CPU, so it is off by default.
/// Pure memory-to-memory calls into zlib; no state between calls; thread-safe.
public enum Gzip {
    public struct Failure: Error, CustomStringConvertible {
        public var call: String
        public var code: Int32
        public var description: String { "\(call) failed (zlib \(code))" }
    }

    /// `bytes` compressed at `level` (1 fastest … 9 smallest; 1 is what Telegraf's default uses
    /// in spirit: cheap, and most of the gain on repetitive text).
    public static func compress(_ bytes: [UInt8], level: Int32 = 1) throws(Failure) -> [UInt8] {
        var stream = z_stream()
        let status = gridmon_deflate_init_gzip(&stream, level)
        guard status == Z_OK else { throw Failure(call: "deflateInit2", code: status) }
        defer { deflateEnd(&stream) }
        // deflateBound is the worst case for this input (plus the gzip header and trailer).
        let bound = Int(deflateBound(&stream, UInt(bytes.count))) + 18
        var out = [UInt8](repeating: 0, count: bound)
        let result: Int32 = bytes.withUnsafeBufferPointer { input in
            out.withUnsafeMutableBufferPointer { output in
                stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress)
                stream.avail_in = UInt32(input.count)
                stream.next_out = output.baseAddress
                stream.avail_out = UInt32(output.count)
                return deflate(&stream, Z_FINISH)
            }
        }
        guard result == Z_STREAM_END else { throw Failure(call: "deflate", code: result) }
        out.removeLast(Int(stream.avail_out))
        return out
    }

    /// The bytes `compressed` (one gzip member) stands for; at most `limit` bytes, so a
    /// hostile input cannot balloon (a "zip bomb").
    public static func decompress(_ compressed: [UInt8], limit: Int = 64 << 20) throws(Failure) -> [UInt8] {
        var stream = z_stream()
        let status = gridmon_inflate_init_gzip(&stream)
        guard status == Z_OK else { throw Failure(call: "inflateInit2", code: status) }
        defer { inflateEnd(&stream) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        var result: Int32 = Z_OK
        try compressed.withUnsafeBufferPointer { input throws(Failure) in
            stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress)
            stream.avail_in = UInt32(input.count)
            while result != Z_STREAM_END {
                let produced: Int = chunk.withUnsafeMutableBufferPointer { buffer in
                    stream.next_out = buffer.baseAddress
                    stream.avail_out = UInt32(buffer.count)
                    result = inflate(&stream, Z_NO_FLUSH)
                    return buffer.count - Int(stream.avail_out)
                }
                guard result == Z_OK || result == Z_STREAM_END else { throw Failure(call: "inflate", code: result) }
                guard out.count + produced <= limit else { throw Failure(call: "inflate (over the limit)", code: Z_BUF_ERROR) }
                out += chunk[..<produced]
                if result == Z_OK && produced == 0 && stream.avail_in == 0 { throw Failure(call: "inflate (truncated)", code: Z_BUF_ERROR) }
            }
        }
        return out
    }
}
