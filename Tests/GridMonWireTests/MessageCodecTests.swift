import Testing
@testable import GridMonWire

private func decode(_ payload: [UInt8]) throws -> Message {
    try payload.withUnsafeBytes { try Message(payload: $0) }
}

@Suite struct MessageCodecTests {
    @Test(arguments: WireFixture.messages)
    func roundTripsEveryMessage(message: Message) throws {
        let encoder = MessageEncoder()
        #expect(try decode(encoder.encodePayload(message)) == message)
    }

    @Test func framesOfManyMessagesDecodeInOrder() throws {
        let encoder = MessageEncoder()
        var stream = Preface.bytes
        for message in WireFixture.messages { encoder.appendFrame(message, to: &stream) }
        var decoder = FrameDecoder()
        var decoded: [Message] = []
        try decoder.decode(bytes: stream) { decoded.append(try Message(payload: $0)) }
        #expect(decoded == WireFixture.messages)
    }

    @Test func appendFrameWritesHeaderAndReportsSize() throws {
        var out: [UInt8] = [0xEE]
        let written = MessageEncoder().appendFrame(.ping(Ping(nonce: 1)), to: &out)
        #expect(out.count == 1 + written)
        #expect(out[1] == 0)
        let length = Int(out[2]) << 24 | Int(out[3]) << 16 | Int(out[4]) << 8 | Int(out[5])
        #expect(length == written - FrameFormat.headerSize)
        // Frame{ping(5): Ping{nonce(1): 1}} = 2a 02 08 01
        #expect(Array(out[6...]) == [0x2A, 0x02, 0x08, 0x01])
    }

    @Test func messagesLargerThanTheScratchArenaRoundTrip() throws {
        let encoder = MessageEncoder()
        let samples = (0..<2000).map { i in
            Sample(seq: UInt64(i + 1), timestampNs: Int64(i), cpuPercent: Double(i),
                   extra: (0..<3).map { Gauge(name: "g\($0)-\(String(repeating: "x", count: i % 40))", value: Double($0)) })
        }
        let big = Message.samples(SampleBatch(streamID: 1, samples: samples))
        #expect(try decode(encoder.encodePayload(big)) == big)
        // Again, now that the arena has grown, and a small message after it.
        #expect(try decode(encoder.encodePayload(big)) == big)
        #expect(try decode(encoder.encodePayload(.ping(Ping(nonce: 3)))) == .ping(Ping(nonce: 3)))
        // Through one MessageDecoder: past its arena's block (the excess from the heap), then
        // in the grown block, then a small message in it.
        let decoder = MessageDecoder()
        for message in [big, big, .ping(Ping(nonce: 3)), big] {
            #expect(try encoder.encodePayload(message).withUnsafeBytes { try decoder.decode($0) } == message)
        }
    }

    @Test func oneDecoderDecodesEveryMessageInTurn() throws {
        let encoder = MessageEncoder()
        let decoder = MessageDecoder()
        // Twice round: each frame's C structs reuse the arena the one before it left.
        for message in WireFixture.messages + WireFixture.messages {
            #expect(try encoder.encodePayload(message).withUnsafeBytes { try decoder.decode($0) } == message)
        }
    }

    @Test func oneDecoderRejectsBadInputAsTheOneOffDecodeDoesAndCarriesOn() throws {
        let decoder = MessageDecoder()
        let truncated = Array(MessageEncoder().encodePayload(WireFixture.messages[3]).dropLast())
        let cases: [([UInt8], WireError)] = [
            ([0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF], .unparseableProtobuf(length: 6)),
            ([0x18, 0x01], .unparseableProtobuf(length: 2)),
            ([0x9A, 0x06, 0x00], .unknownBody(fieldNumber: 99)),
            ([], .missingBody),
            (truncated, .unparseableProtobuf(length: truncated.count)),
        ]
        for (bytes, error) in cases {
            #expect(throws: error) { try bytes.withUnsafeBytes { try decoder.decode($0) } }
            #expect(throws: error) { try decode(bytes) }
            let good = Message.ping(Ping(nonce: UInt64(bytes.count)))
            #expect(try MessageEncoder().encodePayload(good).withUnsafeBytes { try decoder.decode($0) } == good)
        }
    }

    @Test func emptyFrameHasNoBody() {
        #expect(throws: WireError.missingBody) { try decode([]) }
    }

    @Test func unknownBodyIsNamedByFieldNumber() {
        // Field 99, length-delimited, empty: a message kind from a newer schema.
        #expect(throws: WireError.unknownBody(fieldNumber: 99)) { try decode([0x9A, 0x06, 0x00]) }
    }

    @Test func garbageIsUnparseable() {
        #expect(throws: WireError.unparseableProtobuf(length: 6)) {
            try decode([0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF])
        }
    }

    @Test func wrongWireTypeIsUnparseable() {
        // Field 3 (samples, a message) sent as a varint.
        #expect(throws: WireError.unparseableProtobuf(length: 2)) { try decode([0x18, 0x01]) }
    }

    @Test func truncatedSubmessageIsUnparseable() throws {
        let payload = MessageEncoder().encodePayload(WireFixture.messages[3])
        #expect(throws: WireError.unparseableProtobuf(length: payload.count - 1)) {
            try decode(Array(payload.dropLast()))
        }
    }

    @Test func statusCodesKeepUnknownValues() {
        #expect(StatusCode(rawValue: 16) == .unauthenticated)
        #expect(StatusCode.unauthenticated.rawValue == 16)
        #expect(StatusCode(rawValue: 99) == .other(99))
        #expect(StatusCode.other(99).rawValue == 99)
        #expect(StatusCode.resourceExhausted.description == "RESOURCE_EXHAUSTED")
    }
}
