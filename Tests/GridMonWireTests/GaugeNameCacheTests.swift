import Testing
@testable import GridMonWire

/// `GaugeNameCache`: what decoding the bytes gives, shared when met again, bounded.
@Suite struct GaugeNameCacheTests {
    /// The address of a string's UTF-8 bytes: the same for two strings that share storage.
    /// (Only for strings longer than 15 bytes: shorter ones live inline, not in storage.)
    private func storage(_ name: String) -> UnsafePointer<UInt8>? {
        name.utf8.withContiguousStorageIfAvailable { $0.baseAddress } ?? nil
    }

    private func name(_ cache: GaugeNameCache, _ bytes: [UInt8]) -> String {
        bytes.withUnsafeBufferPointer { cache.name($0) }
    }

    /// Names of every kind — empty, short, long, past the kept length, with a NUL, invalid
    /// UTF-8 (whose repair can keep the length: a cut 4-byte sequence is 3 bytes and so is
    /// U+FFFD) — many more than the slots, in random order and again: every answer is what
    /// decoding the bytes gives.
    @Test func everyAnswerIsWhatDecodingGives() {
        var rng = SplitMix64(seed: 5)
        let alphabet: [UInt8] = Array("abcxyz_.0123456789".utf8) + [0, 0xF0, 0x9F, 0x98, 0x80, 0xFF, 0xC3, 0xA9]
        let names: [[UInt8]] = (0..<3000).map { i in
            let length = [0, 1, 7, 8, 9, 15, 16, 17, 25, 96, 97, 200][i % 12]
            return (0..<length).map { _ in alphabet.randomElement(using: &rng)! }
        } + [[0xF0, 0x9F, 0x98], [0x61, 0xF0, 0x9F, 0x98]]
        let cache = GaugeNameCache()
        for _ in 0..<3 {
            for bytes in names.shuffled(using: &rng) {
                let expected = bytes.withUnsafeBufferPointer { GaugeNameCache.decode($0) }
                let got = name(cache, bytes)
                #expect(Array(got.utf8) == Array(expected.utf8), "bytes \(bytes)")
            }
        }
        #expect(cache.hits > 0)
    }

    /// A name met again is the string made the first time (its bytes not copied again), as
    /// long as no other name took its slot; a name with a NUL or invalid UTF-8, or longer than
    /// `maxNameBytes`, is made afresh each time.
    @Test func aNameMetAgainIsShared() {
        let cache = GaugeNameCache()
        let agent = Array("net_bytes_recv_per_s.eth0".utf8)
        let first = name(cache, agent)
        let again = name(cache, agent)
        #expect(again == "net_bytes_recv_per_s.eth0")
        #expect(storage(first) != nil && storage(first) == storage(again))
        #expect(cache.hits == 1 && cache.misses == 1)

        // (Both kept alive while compared: a freed string's storage could be the next one's.)
        let long = [UInt8](repeating: 0x61, count: GaugeNameCache.maxNameBytes + 1)
        let longs = (name(cache, long), name(cache, long))
        #expect(longs.0.utf8.count == long.count && storage(longs.0) != storage(longs.1))
        let withNul = Array("disk_used_percent./\u{0}tail".utf8)
        let cut = (name(cache, withNul), name(cache, withNul))
        #expect(cut.0 == "disk_used_percent./" && storage(cut.0) != storage(cut.1))
        #expect(cache.hits == 1)
    }

    /// Through the server's decoder: the same gauge in two frames is one string, and the
    /// names are those of protobuf-c.
    @Test func framesDecodedInTurnShareTheirNames() throws {
        let encoder = MessageEncoder()
        let decoder = MessageDecoder()
        let names = ["cpu_usage_user", "net_bytes_recv_per_s.eth0", "diskio_write_bytes_per_s.sda"]
        func frame(_ seq: UInt64) -> [UInt8] {
            encoder.encodePayload(.samples(SampleBatch(streamID: 1, samples: [
                Sample(seq: seq, timestampNs: 1, extra: names.map { Gauge(name: $0, value: Double(seq)) }),
            ])))
        }
        let decoded = try [frame(1), frame(2)].map { payload in
            try payload.withUnsafeBytes { bytes -> [Gauge] in
                guard case .samples(let batch) = try decoder.decode(bytes) else { return [] }
                return batch.samples.first?.extra ?? []
            }
        }
        #expect(decoded[0].map(\.name) == names && decoded[1].map(\.name) == names)
        #expect(decoded[1].map(\.value) == [2, 2, 2])
        for i in 1..<names.count { #expect(storage(decoded[0][i].name) == storage(decoded[1][i].name)) }
    }
}
