import Testing
@testable import GridMonWire

/// What one frame may decode to (`MessageDecoder.maxDecodedBytes`): a peer's frame of empty
/// samples or gauges is refused before it is built, on both decoding paths, and real frames
/// stay far inside the default.
@Suite struct DecodeBudgetTests {
    /// `Frame` field 15, empty: unknown to this schema, so `SampleBatchParser` declines the
    /// payload and protobuf-c decodes it (keeping the field as unknown).
    private static let unknownField: [UInt8] = [0x7A, 0x00]

    private static func varint(_ value: Int) -> [UInt8] {
        var value = value
        var out: [UInt8] = []
        while value >= 0x80 {
            out.append(UInt8(value & 0x7F) | 0x80)
            value >>= 7
        }
        return out + [UInt8(value)]
    }

    private static func lengthDelimited(_ field: Int, _ body: [UInt8]) -> [UInt8] {
        varint(field << 3 | 2) + varint(body.count) + body
    }

    /// `Frame{samples: SampleBatch{stream_id: 1, sample: [] × count}}`: 2 bytes a sample.
    private static func emptySamples(_ count: Int) -> [UInt8] {
        var batch: [UInt8] = [0x08, 0x01]
        for _ in 0..<count { batch += [0x12, 0x00] }
        return lengthDelimited(3, batch)
    }

    /// One sample with `count` empty extra gauges (field 11): 2 bytes a gauge.
    private static func emptyGauges(_ count: Int) -> [UInt8] {
        var sample: [UInt8] = [0x08, 0x01]
        for _ in 0..<count { sample += [0x5A, 0x00] }
        return lengthDelimited(3, [0x08, 0x01] + lengthDelimited(2, sample))
    }

    /// 64 samples shaped like an agent's with every input: the eight fixed gauges and 42
    /// named ones (names of about 20 letters, or of one: protobuf-c's structs cost the same
    /// per gauge whatever its name, so short names decode to the most per byte).
    private static func agentBatch(shortNames: Bool = false) -> Message {
        .samples(SampleBatch(streamID: 1, samples: (1...64).map { seq in
            Sample(seq: UInt64(seq), timestampNs: 1_767_225_600_000_000_000 + Int64(seq) * 1_000_000_000,
                   cpuPercent: 12.5, memoryPercent: 41.2, diskPercent: 63.1, load1: 0.7, netRxBytesPerSec: 10_512,
                   netTxBytesPerSec: 8_100, diskReadBytesPerSec: 4_096, diskWriteBytesPerSec: 81_920,
                   extra: (0..<42).map { i in
                       Gauge(name: shortNames ? String(UnicodeScalar(UInt8(97 + i % 26))) : "gauge_\(i % 7)_of_agent.\(i)",
                             value: Double(i) * 1.5 + 0.25)
                   })
        }))
    }

    private func decode(_ decoder: MessageDecoder, _ payload: [UInt8]) throws -> Message {
        try payload.withUnsafeBytes { try decoder.decode($0) }
    }

    @Test(arguments: ["samples", "gauges"], [false, true])
    func emptyFieldsPastTheBudgetAreRefusedAndTheDecoderCarriesOn(kind: String, throughProtobufC: Bool) throws {
        let budget = 1 << 20
        let decoder = MessageDecoder(maxDecodedBytes: budget)
        // 50,000 empty fields: 100 KB on the wire, 4.4 MB as samples (1.2 MB as gauges) and
        // more in protobuf-c's structs.
        var payload = kind == "samples" ? Self.emptySamples(50_000) : Self.emptyGauges(50_000)
        if throughProtobufC { payload += Self.unknownField }
        #expect(throws: WireError.decodesTooLarge(length: payload.count, limit: budget)) { try decode(decoder, payload) }
        // The same frame decodes without a budget: the refusal is the budget's, not the bytes'.
        if case .samples(let batch) = try decode(MessageDecoder(maxDecodedBytes: .max), payload) {
            #expect(batch.samples.count == (kind == "samples" ? 50_000 : 1))
            #expect(batch.samples.map(\.extra.count).reduce(0, +) == (kind == "samples" ? 0 : 50_000))
        } else {
            Issue.record("not a sample batch")
        }
        // The decoder (its arena too) is fine afterwards.
        let real = MessageEncoder().encodePayload(Self.agentBatch())
        #expect(try decode(decoder, real) == Self.agentBatch())
        #expect(try decode(decoder, real + Self.unknownField) == Self.agentBatch())
        #expect(try decode(decoder, MessageEncoder().encodePayload(.ping(Ping(nonce: 7)))) == .ping(Ping(nonce: 7)))
    }

    @Test(arguments: [false, true])
    func realFramesDecodeWithinTwelveTimesTheirBytesOnBothPaths(shortNames: Bool) throws {
        // The default budget is 16 × the frame cap: an agent's frame at the cap fits whichever
        // path decodes it (measured: as values 0.8× with long names, 1.7× with one-letter
        // ones; in protobuf-c's structs 5.9× and 11.3×).
        let batch = Self.agentBatch(shortNames: shortNames)
        let payload = MessageEncoder().encodePayload(batch)
        let decoder = MessageDecoder(maxDecodedBytes: 12 * payload.count)
        #expect(try decode(decoder, payload) == batch)
        #expect(try decode(decoder, payload + Self.unknownField) == batch)
        #expect(MessageDecoder().maxDecodedBytes == 16 * FrameFormat.defaultMaxFrameSize)
    }

    @Test func anAckFullOfVerdictsDecodesWithinTwelveTimesItsBytes() throws {
        // What the agent decodes: an Ack with many verdicts fits the default budget at the
        // frame cap (measured: 8.3 times its bytes in protobuf-c's structs).
        let ack = Message.ack(Ack(streamID: 3, durableSeq: 1_000_000,
                                  anomalies: (1...20_000).map { Verdict(seq: UInt64(980_000 + $0), score: 0.5 + Double($0 % 97) / 200) },
                                  detector: .active))
        let payload = MessageEncoder().encodePayload(ack)
        #expect(try decode(MessageDecoder(maxDecodedBytes: 12 * payload.count), payload) == ack)
        // Empty verdicts, 2 bytes each, are refused.
        let empty: [UInt8] = Self.lengthDelimited(4, [0x08, 0x03] + Array([[UInt8]](repeating: [0x1A, 0x00], count: 20_000).joined()))
        #expect(throws: WireError.decodesTooLarge(length: empty.count, limit: 16 * empty.count)) {
            try decode(MessageDecoder(maxDecodedBytes: 16 * empty.count), empty)
        }
    }

    @Test func theBudgetIsCheckedBeforeTheSamplesAreAllocated() {
        // Exactly the samples' bytes: accepted; one byte less: refused (`Sample`'s stride).
        let count = 1_000
        let payload = Self.emptySamples(count)
        let exact = count * MemoryLayout<Sample>.stride
        #expect(throws: Never.self) { try decode(MessageDecoder(maxDecodedBytes: exact), payload) }
        #expect(throws: WireError.decodesTooLarge(length: payload.count, limit: exact - 1)) {
            try decode(MessageDecoder(maxDecodedBytes: exact - 1), payload)
        }
    }
}
