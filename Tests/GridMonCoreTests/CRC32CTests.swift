import Testing
@testable import GridMonCore

@Suite struct CRC32CTests {
    /// The definition, a bit at a time: what both fast paths are held to.
    private func bitwise(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var crc: UInt32 = ~0
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
        }
        return ~crc
    }

    @Test func knownValuesFromRFC3720() {
        // RFC 3720 B.4: 32 bytes of zeros → 0x8A9136AA, of 0xFF → 0x62A8AB43, bytes 0...31
        // ascending → 0x46DD794E; and the check value of "123456789", 0xE3069283.
        let checksums: [(UnsafeRawBufferPointer) -> UInt32] = [{ CRC32C.checksum($0) }, { CRC32C.softwareChecksum($0) }]
        for checksum in checksums {
            #expect([UInt8](repeating: 0, count: 32).withUnsafeBytes(checksum) == 0x8A91_36AA)
            #expect([UInt8](repeating: 0xFF, count: 32).withUnsafeBytes(checksum) == 0x62A8_AB43)
            #expect(Array(0..<32 as Range<UInt8>).withUnsafeBytes(checksum) == 0x46DD_794E)
            #expect(Array("123456789".utf8).withUnsafeBytes(checksum) == 0xE306_9283)
        }
    }

    #if arch(x86_64)
    @Test func x86_64UsesTheSSE42Instruction() {
        // Every x86-64 CPU since 2008 has it; false here means the shim's CPU check broke.
        #expect(CRC32C.usesHardware)
    }
    #endif

    @Test func bothPathsMatchTheDefinitionAtEveryLengthAlignmentAndSplit() {
        var rng = SplitMix64(seed: 17)
        let bytes = (0..<320).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        bytes.withUnsafeBytes { all in
            for start in 0..<8 {  // unaligned starts
                for length in 0...300 {
                    let slice = UnsafeRawBufferPointer(rebasing: all[start..<start + length])
                    let reference = bitwise(slice)
                    #expect(CRC32C.checksum(slice) == reference)
                    #expect(CRC32C.softwareChecksum(slice) == reference)
                    // Continuing over a split gives the whole's checksum.
                    let cut = length / 3
                    let head = UnsafeRawBufferPointer(rebasing: slice[..<cut])
                    let tail = UnsafeRawBufferPointer(rebasing: slice[cut...])
                    #expect(CRC32C.checksum(tail, continuing: CRC32C.checksum(head)) == reference)
                    #expect(CRC32C.softwareChecksum(tail, continuing: CRC32C.softwareChecksum(head)) == reference)
                }
            }
        }
    }
}
