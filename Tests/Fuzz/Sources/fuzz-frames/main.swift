// Fuzz target: arbitrary bytes through the whole receive path of a connection.
//
// Input layout: byte 0 picks how the rest is chunked (1...256 bytes per read, cycled with a
// small stride so chunk sizes vary), byte 1 bit 0 picks whether a preface is expected.
// Every complete frame is decoded into a `Message` twice, by the server's `MessageDecoder`
// (`SampleBatchParser` for a plain SampleBatch, else protobuf-c's structs in an arena) and by
// `Message(payload:)` (protobuf-c, structs on the heap, where ASan sees every overread), and
// both must agree: the same encoding (every double's bits) and the same description (the
// encoder cuts strings at a NUL, as protobuf-c does, so only the description sees one);
// every decoded message is encoded again and must decode to the same value. Crashes, ASan
// reports and leaks (LeakSanitizer, e.g. protobuf-c memory not freed) all fail the run.
import CLibFuzzer
import GridMonWire
#if canImport(Glibc)
import Glibc
#endif

let encoder = MessageEncoder()
// No decoded-size budget here: this target compares the two decoders, and protobuf-c's own
// has none (the budget is tested in MessageCodecTests).
let arenaDecoder = MessageDecoder(maxDecodedBytes: .max)

let callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32 = { data, size in
    guard let data, size >= 2 else { return 0 }
    let input = UnsafeRawBufferPointer(start: data, count: size)
    let baseChunk = Int(input[0]) + 1
    var decoder = FrameDecoder(maxFrameSize: 1 << 20, expectPreface: input[1] & 1 == 1)
    let body = UnsafeRawBufferPointer(rebasing: input[2...])
    var index = 0
    var step = 0
    do {
        while index < body.count {
            let size = min(body.count - index, (baseChunk + step * 7) % 256 + 1)
            step += 1
            try decoder.decode(UnsafeRawBufferPointer(rebasing: body[index..<index + size])) { payload in
                let heap = Result { () throws(WireError) in try Message(payload: payload) }
                let arena = Result { () throws(WireError) in try arenaDecoder.decode(payload) }
                switch (heap, arena) {
                case (.success(let a), .success(let b))
                where encoder.encodePayload(a) == encoder.encodePayload(b) && "\(a)" == "\(b)": break
                case (.failure(let a), .failure(let b)) where a == b: break
                default: fatalError("the server's decoder disagrees with protobuf-c: \(heap) against \(arena)")
                }
                guard case .success(let message) = heap else { return }
                let again = encoder.encodePayload(message)
                let decoded = again.withUnsafeBytes { try? Message(payload: $0) }
                // NaN != NaN, so compare the re-encoded bytes instead of the values.
                let reencoded = decoded.map { encoder.encodePayload($0) }
                if reencoded != again {
                    fatalError("round trip changed the message: \(message) -> \(String(describing: decoded))")
                }
            }
            index += size
        }
        try decoder.finish()
    } catch {
        // Errors are the expected answer to bad input; only crashes and leaks are bugs.
        _ = String(describing: error)
    }
    return 0
}

var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv, callback))
