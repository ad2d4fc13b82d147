import Testing
@testable import GridMonWire

/// `SampleBatchParser` against protobuf-c, which defines what a frame means.
///
/// Doubles are compared by their bits (NaN != NaN), strings as they are: not through the
/// encoder, which would cut a string at a NUL as protobuf-c does and hide a difference.
@Suite struct SampleBatchParserTests {
    /// A message with every double replaced by its bit pattern, comparable with ==.
    private struct Bits: Equatable {
        var streamID: UInt32
        var samples: [[UInt64]]
        var names: [[String]]
        init(_ message: Message) {
            guard case .samples(let batch) = message else {
                streamID = 0; samples = [[UInt64.max]]; names = [["not a batch: \(message)"]]
                return
            }
            streamID = batch.streamID
            samples = batch.samples.map { s in
                [s.seq, UInt64(bitPattern: s.timestampNs)]
                    + [s.cpuPercent, s.memoryPercent, s.diskPercent, s.load1, s.netRxBytesPerSec,
                       s.netTxBytesPerSec, s.diskReadBytesPerSec, s.diskWriteBytesPerSec].map(\.bitPattern)
                    + s.extra.map(\.value.bitPattern)
            }
            names = batch.samples.map { $0.extra.map(\.name) }
        }
    }

    /// protobuf-c's answer.
    private func reference(_ payload: [UInt8]) -> Result<Bits, WireError> {
        payload.withUnsafeBytes { bytes in Result { () throws(WireError) in Bits(try Message(payload: bytes)) } }
    }

    private func fast(_ payload: [UInt8]) throws -> Bits? {
        try payload.withUnsafeBytes { try SampleBatchParser.parse($0) }.map { Bits(.samples($0)) }
    }

    private func randomSample(_ seq: UInt64, using rng: inout some RandomNumberGenerator) -> Sample {
        let specials: [Double] = [0, -0.0, .nan, .infinity, -.infinity, 1e-310, .greatestFiniteMagnitude]
        func value() -> Double {
            Int.random(in: 0..<8, using: &rng) == 0
                ? specials.randomElement(using: &rng)! : Double.random(in: -1e6...1e6, using: &rng)
        }
        let names = ["temp_c", "fan rpm", "ünïcode", "", "a=b,c d"]
        return Sample(
            seq: seq, timestampNs: Int64.random(in: Int64.min...Int64.max, using: &rng),
            cpuPercent: value(), memoryPercent: value(), diskPercent: value(), load1: value(),
            netRxBytesPerSec: value(), netTxBytesPerSec: value(), diskReadBytesPerSec: value(),
            diskWriteBytesPerSec: value(),
            extra: (0..<Int.random(in: 0...3, using: &rng)).map { _ in
                Gauge(name: names.randomElement(using: &rng)!, value: value())
            })
    }

    @Test func encodedBatchesTakeTheFastPathAndMatchProtobufC() throws {
        var rng = SplitMix64(seed: 17)
        let encoder = MessageEncoder()
        for count in [0, 1, 2, 64, 300] {
            let batch = SampleBatch(
                streamID: UInt32.random(in: 0...UInt32.max, using: &rng),
                samples: (0..<count).map { randomSample(UInt64($0) * 977 + 1, using: &rng) })
            let payload = encoder.encodePayload(.samples(batch))
            let parsed = try #require(try payload.withUnsafeBytes { try SampleBatchParser.parse($0) })
            #expect(parsed.samples.count == count)
            #expect(parsed.streamID == batch.streamID)
            // Not against `batch`: proto3 does not write a field equal to 0, so -0.0 comes back +0.
            #expect(reference(payload) == .success(Bits(.samples(parsed))))
        }
    }

    /// Varints of every length, 1 to 10 bytes, minimal and padded: read as one word when 10 or
    /// more bytes follow (the seq before a timestamp and gauges), byte by byte when not (a
    /// sample that ends with its seq); either way what protobuf-c reads.
    @Test func varintsOfEveryLengthMatchProtobufC() throws {
        var values: [UInt64] = [0, 1, .max, .max - 1, 1 << 63]
        for bits in 1...63 { values += [(1 << bits) - 1, 1 << bits, (1 << bits) + 1] }
        let encoder = MessageEncoder()
        for value in values {
            for sample in [Sample(seq: value, timestampNs: Int64(bitPattern: value), cpuPercent: 1.5, extra: [Gauge(name: "g", value: 2)]),
                           Sample(seq: value, timestampNs: 0)] {
                let payload = encoder.encodePayload(.samples(SampleBatch(streamID: UInt32(truncatingIfNeeded: value), samples: [sample])))
                let parsed = try #require(try fast(payload))
                #expect(reference(payload) == .success(parsed))
                #expect(parsed.samples[0][0] == value)
            }
        }
        // Padded (non-minimal) varints of 2 to 10 bytes for the seq, each followed by a
        // timestamp (so read as one word when 10 bytes follow) or last (byte by byte).
        for length in 2...10 {
            let seq: [UInt8] = [0x81] + Array(repeating: 0x80, count: length - 2) + [0x00]
            for tail in [[0x10, 0x05, 0x19, 0, 0, 0, 0, 0, 0, 0xF0, 0x3F] as [UInt8], []] {
                let sample = [0x08] + seq + tail
                let payload: [UInt8] = [0x1A, UInt8(sample.count + 2), 0x12, UInt8(sample.count)] + sample
                let parsed = try #require(try fast(payload))
                #expect(reference(payload) == .success(parsed))
                #expect(parsed.samples[0][0] == 1)
            }
        }
    }

    /// A varint that runs to the end of its sample is unterminated, whatever byte lies beyond
    /// the payload (here a 0 that would end it, read by a parser that looked past its range).
    @Test func aVarintIsNeverReadPastItsField() throws {
        for cut in 0..<9 {
            let sample: [UInt8] = [0x08] + Array(repeating: 0xFF, count: 8 - cut) + [0x81]
            let frame: [UInt8] = [0x1A, UInt8(sample.count + 2), 0x12, UInt8(sample.count)] + sample
            let parsed = try (frame + [0x00, 0x00]).withUnsafeBytes {
                try SampleBatchParser.parse(UnsafeRawBufferPointer(rebasing: $0[..<frame.count]))
            }
            #expect(parsed == nil)
            #expect((try? reference(frame).get()) == nil)  // protobuf-c refuses it too
        }
    }

    /// Fields in any order, repeated, or with extras between fixed gauges: the last value of
    /// each wins, as in protobuf-c.
    @Test func fieldsOutOfOrderMatchProtobufC() throws {
        let fixed: [[UInt8]] = [[0x08, 0x07], [0x10, 0x09]] + (3...10).map { [UInt8($0 << 3 | 1), 0, 0, 0, 0, 0, 0, UInt8($0), 0x40] }
        let extra: [UInt8] = [0x5A, 0x0E, 0x0A, 0x03, 0x61, 0x62, 0x63, 0x11, 0, 0, 0, 0, 0, 0, 0x08, 0x40]
        var rng = SplitMix64(seed: 99)
        for _ in 0..<300 {
            var fields = fixed + [extra]
            fields.shuffle(using: &rng)
            fields += fields.prefix(Int.random(in: 0...2, using: &rng)).map { field in  // (lengths stay one-byte varints)
                var repeated = field
                if repeated[0] & 7 == 1 { repeated[repeated.count - 2] ^= 0x0F }  // another double
                return repeated
            }
            let sample = fields.flatMap { $0 }
            let batch: [UInt8] = [0x12, UInt8(sample.count)] + sample
            let payload: [UInt8] = [0x1A, UInt8(batch.count)] + batch
            let parsed = try #require(try fast(payload))
            #expect(reference(payload) == .success(parsed))
        }
    }

    @Test func otherBodiesAreLeftToProtobufC() throws {
        let encoder = MessageEncoder()
        for message in WireFixture.messages {
            let payload = encoder.encodePayload(message)
            let parsed = try payload.withUnsafeBytes { try SampleBatchParser.parse($0) }
            if case .samples = message { #expect(parsed != nil) } else { #expect(parsed == nil) }
        }
    }

    /// Shapes protobuf-c accepts whose meaning is spelled out by hand here.
    @Test(arguments: [
        // A repeated scalar keeps its last value: stream id 5 then 6; seq 1 then 2.
        ([0x1A, 0x08, 0x08, 0x05, 0x08, 0x06, 0x12, 0x02, 0x08, 0x01] as [UInt8],
         SampleBatch(streamID: 6, samples: [Sample(seq: 1, timestampNs: 0)])),
        ([0x1A, 0x06, 0x12, 0x04, 0x08, 0x01, 0x08, 0x02], SampleBatch(streamID: 0, samples: [Sample(seq: 2, timestampNs: 0)])),
        // A stream id from a 10-byte varint keeps its low 32 bits (protobuf-c's parse_uint32).
        ([0x1A, 0x0B, 0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],
         SampleBatch(streamID: .max, samples: [])),
        // A non-minimal varint (0x81 0x80 0x00 = 1).
        ([0x1A, 0x06, 0x12, 0x04, 0x08, 0x81, 0x80, 0x00], SampleBatch(streamID: 0, samples: [Sample(seq: 1, timestampNs: 0)])),
        // A gauge's name ends at its first NUL; invalid UTF-8 becomes U+FFFD; value before name.
        ([0x1A, 0x13, 0x12, 0x11, 0x5A, 0x0F, 0x11, 0, 0, 0, 0, 0, 0, 0xF0, 0x3F, 0x0A, 0x04, 0x61, 0xFF, 0x00, 0x62],
         SampleBatch(streamID: 0, samples: [Sample(seq: 0, timestampNs: 0, extra: [Gauge(name: "a\u{FFFD}", value: 1)])])),
        // An empty batch, and an empty sample.
        ([0x1A, 0x00], SampleBatch(streamID: 0, samples: [])),
        ([0x1A, 0x02, 0x12, 0x00], SampleBatch(streamID: 0, samples: [Sample(seq: 0, timestampNs: 0)])),
    ])
    func handWrittenShapesMeanWhatProtobufCSays(payload: [UInt8], expected: SampleBatch) throws {
        #expect(reference(payload) == .success(Bits(.samples(expected))))
        #expect(try payload.withUnsafeBytes { try SampleBatchParser.parse($0) } == expected)
    }

    /// Shapes the parser declines; protobuf-c answers for them (some are valid, some not).
    @Test(arguments: [
        [] as [UInt8],
        [0x1A, 0x00, 0x1A, 0x00],  // the body twice
        [0x1A, 0x00, 0x00],  // trailing byte
        [0x1A, 0x02, 0x18, 0x01],  // unknown field 3 in the batch
        [0x1A, 0x04, 0x12, 0x02, 0x18, 0x01],  // field 3 (a double) as a varint
        [0x1A, 0x04, 0x12, 0x02, 0x60, 0x01],  // unknown field 12 in a sample
        [0x1A, 0x04, 0x12, 0x05, 0x08, 0x01],  // sample length past the batch
        [0x1A, 0x05, 0x12, 0x03, 0x19, 0x00, 0x00],  // truncated double
        [0x1A, 0x03, 0x08, 0x80, 0x80],  // unterminated varint
        [0x1A, 0x0C, 0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x81, 0x00],  // 11-byte varint
        [0x1A, 0x0B, 0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F],  // past 64 bits
        [0x1A, 0x0B, 0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02],  // past 64 bits by one
        [0x1A, 0x86, 0x80, 0x80, 0x80, 0x80, 0x00, 0x08, 0x01, 0x08, 0x02, 0x08, 0x03],  // 6-byte length prefix
        [0x22, 0x00],  // an Ack body
    ])
    func unusualShapesAreLeftToProtobufC(payload: [UInt8]) throws {
        #expect(try fast(payload) == nil)
        let decoder = MessageDecoder()
        let viaDecoder = payload.withUnsafeBytes { bytes in
            Result { () throws(WireError) in Bits(try decoder.decode(bytes)) }
        }
        #expect(viaDecoder == reference(payload))
    }

    /// Random damage to encoded batches: wherever the parser answers, protobuf-c gives the same
    /// batch, and the server's decoder always answers as protobuf-c does.
    @Test func damagedBatchesNeverDisagreeWithProtobufC() throws {
        var rng = SplitMix64(seed: 2026)
        let encoder = MessageEncoder()
        let decoder = MessageDecoder()
        var fastAnswers = 0
        for round in 0..<4000 {
            let batch = SampleBatch(
                streamID: UInt32(round), samples: (0..<Int.random(in: 1...5, using: &rng)).map {
                    randomSample(UInt64($0 + 1), using: &rng)
                })
            var payload = encoder.encodePayload(.samples(batch))
            for _ in 0..<Int.random(in: 1...3, using: &rng) {
                let at = Int.random(in: 0..<payload.count, using: &rng)
                switch Int.random(in: 0..<4, using: &rng) {
                case 0: payload[at] = UInt8.random(in: 0...255, using: &rng)
                case 1: payload[at] ^= 1 << UInt8.random(in: 0..<8, using: &rng)
                case 2: payload.insert(UInt8.random(in: 0...255, using: &rng), at: at)
                default: payload.removeSubrange(at...)
                }
                if payload.isEmpty { break }
            }
            let expected = reference(payload)
            if let parsed = try fast(payload) {
                fastAnswers += 1
                #expect(expected == .success(parsed), "payload \(payload)")
            }
            let viaDecoder = payload.withUnsafeBytes { bytes in
                Result { () throws(WireError) in Bits(try decoder.decode(bytes)) }
            }
            #expect(viaDecoder == expected, "payload \(payload)")
        }
        // Changed doubles and names keep the plain shape: the fast path must see many of them.
        #expect(fastAnswers > 400)
    }
}
