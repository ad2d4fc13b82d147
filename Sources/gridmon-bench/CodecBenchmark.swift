import GridMonWire

/// Encode and decode cost of 1-sample and 64-sample frames.
///
/// The samples are built exactly as in Tools/bench/codec_baseline.c (the plain protobuf-c
/// baseline), so both sides pack and parse identical bytes.
struct CodecBenchmark {
    let rounds: Int
    let millis: Int

    /// Sample `i` of the shared fixture; every field non-zero so proto3 writes all of them.
    static func sample(_ i: Int) -> Sample {
        Sample(
            seq: UInt64(i + 1), timestampNs: 1_700_000_000_000_000_000 + Int64(i) * 1_000_000_000,
            cpuPercent: 12.5 + Double(i % 50), memoryPercent: 41.25, diskPercent: 63.0 + 0.01 * Double(i),
            load1: 0.75, netRxBytesPerSec: 123_456.0 + Double(i), netTxBytesPerSec: 65_432.0,
            diskReadBytesPerSec: 4096.0 * Double(i + 1), diskWriteBytesPerSec: 8192.0)
    }

    func run() {
        let encoder = MessageEncoder()
        let decoder = MessageDecoder()
        for count in [1, 64] {
            let message = Message.samples(SampleBatch(streamID: 1, samples: (0..<count).map(Self.sample)))
            var out: [UInt8] = []
            out.reserveCapacity(64 * 1024)
            let encode = measure(rounds: rounds, millis: millis) {
                out.removeAll(keepingCapacity: true)
                encoder.appendFrame(message, to: &out)
            }
            report("encode_\(count)", encode, perSample: count)

            out.removeAll(keepingCapacity: true)
            encoder.appendFrame(message, to: &out)
            let payload = Array(out.dropFirst(FrameFormat.headerSize))
            precondition(payload.withUnsafeBytes { (try? Message(payload: $0)) } == message, "round trip")
            precondition(payload.withUnsafeBytes { (try? decoder.decode($0)) } == message, "round trip")
            // The server's path: MessageDecoder (SampleBatchParser for these frames).
            let decode = payload.withUnsafeBytes { bytes in
                measure(rounds: rounds, millis: millis) {
                    blackHole(try! decoder.decode(bytes))
                }
            }
            report("decode_\(count)", decode, perSample: count)
            // protobuf-c: C structs from malloc, freed by free_unpacked (as the C baseline).
            let heap = payload.withUnsafeBytes { bytes in
                measure(rounds: rounds, millis: millis) {
                    blackHole(try! Message(payload: bytes))
                }
            }
            report("decode_heap_\(count)", heap, perSample: count)
            print("swift frame_bytes_\(count)=\(out.count)")
        }
    }

    private func report(_ name: String, _ result: (nsPerOp: Double, ops: Int), perSample count: Int) {
        let ns = result.nsPerOp
        print("swift \(name) ns_per_frame=\(format(ns)) ns_per_sample=\(format(ns / Double(count))) ops=\(result.ops)")
    }

    private func format(_ value: Double) -> String {
        String(Double(Int(value * 10)) / 10)
    }
}
