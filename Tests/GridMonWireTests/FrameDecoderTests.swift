import Testing
@testable import GridMonWire

/// Builds a raw frame: flag, big-endian length, payload.
func rawFrame(_ payload: [UInt8], flag: UInt8 = 0) -> [UInt8] {
    let n = UInt32(payload.count)
    return [flag, UInt8(n >> 24), UInt8(n >> 16 & 0xff), UInt8(n >> 8 & 0xff), UInt8(n & 0xff)] + payload
}

/// Feeds `bytes` to `decoder` in chunks of the given sizes (cycled), collecting payloads.
func feed(_ decoder: inout FrameDecoder, _ bytes: [UInt8], chunks: [Int]) throws -> [[UInt8]] {
    var frames: [[UInt8]] = []
    var index = 0
    var k = 0
    while index < bytes.count {
        let size = min(chunks[k % chunks.count], bytes.count - index)
        k += 1
        try decoder.decode(bytes: bytes[index..<index + size]) { frames.append(Array($0)) }
        index += size
    }
    return frames
}

@Suite struct FrameDecoderTests {
    let payloads: [[UInt8]] = [[], [1], Array(0..<200), [9, 8, 7], Array(repeating: 0xAB, count: 70_000)]
    var stream: [UInt8] { Preface.bytes + payloads.flatMap { rawFrame($0) } }

    @Test func decodesWholeStreamInOneChunk() throws {
        var decoder = FrameDecoder()
        let frames = try feed(&decoder, stream, chunks: [stream.count])
        #expect(frames == payloads)
        #expect(decoder.isAtFrameBoundary)
        try decoder.finish()
    }

    @Test(arguments: [1, 2, 3, 5, 7, 8, 13, 4096])
    func decodesAnyFixedChunking(size: Int) throws {
        var decoder = FrameDecoder()
        #expect(try feed(&decoder, stream, chunks: [size]) == payloads)
        #expect(decoder.isAtFrameBoundary)
    }

    @Test func decodesIrregularChunkings() throws {
        var rng = SplitMix64(seed: 42)
        for _ in 0..<200 {
            let chunks = (0..<16).map { _ in Int(rng.next() % 300) + 1 }
            var decoder = FrameDecoder()
            #expect(try feed(&decoder, stream, chunks: chunks) == payloads)
        }
    }

    @Test func frameAtExactLimitIsAccepted() throws {
        var decoder = FrameDecoder(maxFrameSize: 100, expectPreface: false)
        let frames = try feed(&decoder, rawFrame(Array(repeating: 1, count: 100)), chunks: [3])
        #expect(frames.count == 1 && frames[0].count == 100)
    }

    @Test func oversizeLengthFailsBeforeAllocating() throws {
        // 2 GiB announced, one byte of payload sent: the header alone must fail it.
        var decoder = FrameDecoder()
        let header: [UInt8] = Preface.bytes + [0, 0x80, 0, 0, 0, 0xFF]
        #expect(throws: WireError.oversizeFrame(length: 0x8000_0000, limit: 4 * 1024 * 1024)) {
            _ = try feed(&decoder, header, chunks: [1])
        }
        #expect(decoder.bufferedBytes == 0)
        #expect(decoder.hasFailed)
    }

    @Test func limitIsConfigurable() {
        var decoder = FrameDecoder(maxFrameSize: 10, expectPreface: false)
        #expect(throws: WireError.oversizeFrame(length: 11, limit: 10)) {
            _ = try feed(&decoder, rawFrame(Array(repeating: 0, count: 11)), chunks: [64])
        }
    }

    @Test(arguments: [UInt8(1), 2, 0x80, 0xFF])
    func nonZeroFlagIsRejectedAtOnce(flag: UInt8) {
        var decoder = FrameDecoder(expectPreface: false)
        #expect(throws: WireError.badFlag(flag)) {
            _ = try feed(&decoder, [flag], chunks: [1])
        }
    }

    @Test func httpRequestIsRejectedOnFirstByteWithAHint() {
        var decoder = FrameDecoder()
        let request = Array("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
        var caught: WireError?
        do { _ = try feed(&decoder, request, chunks: [request.count]) } catch let error as WireError { caught = error } catch {}
        #expect(caught == .badPreface(received: Array("GET /met".utf8)))
        #expect(caught?.description.contains("HTTP") == true)
        #expect(caught?.kind == "bad_preface")
    }

    @Test func garbageAfterPartialPrefaceShowsWhatCame() {
        var decoder = FrameDecoder()
        #expect(throws: WireError.badPreface(received: Array("GRIDX".utf8) + [0, 1, 2])) {
            _ = try feed(&decoder, Array("GRIDX".utf8) + [0, 1, 2, 3, 4], chunks: [64])
        }
    }

    @Test func otherVersionIsNamed() {
        var decoder = FrameDecoder()
        #expect(throws: WireError.unsupportedVersion(2)) {
            _ = try feed(&decoder, Preface.magic + [2], chunks: [1])
        }
    }

    @Test func truncationIsReportedWhereItHappened() throws {
        var inPreface = FrameDecoder()
        _ = try feed(&inPreface, Array(Preface.bytes.prefix(3)), chunks: [1])
        #expect(throws: WireError.truncated(part: "connection preface", have: 3, need: 8)) { try inPreface.finish() }

        var inHeader = FrameDecoder(expectPreface: false)
        _ = try feed(&inHeader, [0, 0, 0], chunks: [1])
        #expect(throws: WireError.truncated(part: "frame header", have: 3, need: 5)) { try inHeader.finish() }

        var inPayload = FrameDecoder(expectPreface: false)
        _ = try feed(&inPayload, Array(rawFrame(Array(repeating: 7, count: 50)).prefix(25)), chunks: [4])
        #expect(inPayload.bufferedBytes == 20)
        #expect(throws: WireError.truncated(part: "frame payload", have: 20, need: 50)) { try inPayload.finish() }
    }

    @Test func cleanCloseIsNotAnError() throws {
        var silent = FrameDecoder()
        try silent.finish()
        var afterFrames = FrameDecoder()
        _ = try feed(&afterFrames, stream, chunks: [100])
        try afterFrames.finish()
    }

    @Test func decoderStaysFailedAfterAnError() {
        var decoder = FrameDecoder(expectPreface: false)
        #expect(throws: WireError.badFlag(5)) { _ = try feed(&decoder, [5], chunks: [1]) }
        #expect(throws: WireError.decoderFailed) { _ = try feed(&decoder, rawFrame([1]), chunks: [10]) }
    }

    @Test func throwingHandlerStopsDecodingAndFailsTheDecoder() {
        struct Stop: Error {}
        var decoder = FrameDecoder(expectPreface: false)
        var seen = 0
        let bytes = rawFrame([1]) + rawFrame([2]) + rawFrame([3])
        #expect(throws: Stop.self) {
            try decoder.decode(bytes: bytes) { _ in
                seen += 1
                if seen == 2 { throw Stop() }
            }
        }
        #expect(seen == 2)
        #expect(decoder.hasFailed)
    }

    @Test func largeSplitFrameDoesNotPinItsBuffer() throws {
        var decoder = FrameDecoder(expectPreface: false)
        let big = rawFrame(Array(repeating: 3, count: 200_000))
        #expect(try feed(&decoder, big, chunks: [65_536]).count == 1)
        #expect(decoder.bufferedBytes == 0)
        // A small split frame afterwards still decodes.
        #expect(try feed(&decoder, rawFrame([1, 2, 3]), chunks: [2]) == [[1, 2, 3]])
    }
}

/// A tiny deterministic PRNG for test inputs (SplitMix64, Steele et al. 2014).
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite struct FrameDecoderPauseTests {
    @Test func aPauseStopsBetweenFramesSoTheLimitCanChange() throws {
        // Two frames in one chunk: a small one, then one larger than the first limit.
        var bytes: [UInt8] = [0, 0, 0, 0, 2, 0xAA, 0xBB]
        bytes += [0, 0, 0, 0, 100] + [UInt8](repeating: 7, count: 100)
        var decoder = FrameDecoder(maxFrameSize: 16, expectPreface: false)
        var seen: [Int] = []
        let used = try decoder.decode(bytes: bytes) { payload in
            seen.append(payload.count)
            throw FrameDecoder.Pause()
        }
        #expect(used == 7 && seen == [2] && !decoder.hasFailed && decoder.isAtFrameBoundary)
        decoder.maxFrameSize = 1000
        #expect(try decoder.decode(bytes: bytes[used...]) { seen.append($0.count) } == 105)
        #expect(seen == [2, 100])
    }

    @Test func aSlowlyAnnouncedLargeFrameHoldsOnlyWhatArrived() throws {
        var decoder = FrameDecoder(maxFrameSize: 4 << 20, expectPreface: false)
        try decoder.decode(bytes: [0, 0, 0x40, 0, 0] + [UInt8](repeating: 1, count: 10)) { _ in }
        #expect(decoder.bufferedBytes == 10)
        #expect(decoder.pendingCapacity <= 64 * 1024 + 64)
    }
}
