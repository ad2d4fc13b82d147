import GridMonWire
import Testing
@testable import GridMonStore

@Suite struct OutboxSegmentTests {
    let payloads: [[UInt8]] = [Array("first batch\n".utf8), [0], Array(repeating: 0xAB, count: 5000), Array("last\n".utf8)]

    var segment: [UInt8] {
        var bytes = OutboxSegment.header(firstRecord: 42)
        for p in payloads { OutboxSegment.appendRecord(p, to: &bytes) }
        return bytes
    }

    private func read(_ bytes: [UInt8], _ scan: OutboxSegment.Scan) -> [[UInt8]] { scan.payloads.map { Array(bytes[$0]) } }

    @Test func roundTrips() {
        let bytes = segment
        let scan = OutboxSegment.scan(bytes)
        #expect(scan.damage == .none && scan.firstRecord == 42 && scan.validLength == bytes.count)
        #expect(read(bytes, scan) == payloads)
    }

    @Test func everyCutIsATornTailThatKeepsWhatWasWhole() {
        let bytes = segment
        let boundaries = [16, 16 + 8 + 12, 16 + 8 + 12 + 8 + 1, 16 + 8 + 12 + 8 + 1 + 8 + 5000]
        for cut in 0..<bytes.count {
            let scan = OutboxSegment.scan(Array(bytes.prefix(cut)))
            let whole = boundaries.filter { $0 <= cut }.count - 1  // records entirely before the cut
            if cut < 16 {
                #expect(scan.damage == .tornTail(offset: 0), "cut \(cut)")
                continue
            }
            if boundaries.contains(cut) {
                #expect(scan.damage == .none, "cut \(cut)")
            } else {
                #expect(scan.damage == .tornTail(offset: scan.validLength), "cut \(cut)")
            }
            #expect(scan.payloads.count == max(0, whole), "cut \(cut)")
        }
    }

    @Test func aFlippedBitInTheLastRecordIsATornTail() {
        var bytes = segment
        bytes[bytes.count - 2] ^= 1
        let scan = OutboxSegment.scan(bytes)
        #expect(scan.payloads.count == 3)
        #expect(scan.damage == .tornTail(offset: scan.validLength))
    }

    @Test func aFlippedBitInTheMiddleIsCorruption() {
        var bytes = segment
        bytes[16 + 8 + 3] ^= 0x40  // inside the first record's payload
        let scan = OutboxSegment.scan(bytes)
        #expect(scan.payloads.isEmpty)
        #expect(scan.damage == .corrupt(offset: 16, reason: "CRC-32C mismatch in record 42"))
    }

    /// The segment being written has zeros laid down past its records (`SegmentFile`): they
    /// end the records; a write the crash cut short into them is a torn tail; zeros with
    /// data after them are damage, not empty records.
    @Test func zerosPastTheRecordsEndThemAndAWriteCutShortIntoThemIsATornTail() {
        let bytes = segment
        let zeros = [UInt8](repeating: 0, count: 4096)
        let ended = OutboxSegment.scan(bytes + zeros)
        #expect(ended.damage == .none && ended.validLength == bytes.count && read(bytes + zeros, ended) == payloads)

        // The last record's write reached the disk only in part: its end is still zeros.
        let lastStart = bytes.count - 8 - payloads[3].count
        var torn = bytes
        for i in (bytes.count - 3)..<bytes.count { torn[i] = 0 }
        let cut = OutboxSegment.scan(torn + zeros)
        #expect(cut.damage == .tornTail(offset: lastStart) && cut.payloads.count == 3)
        // Only the header made it.
        let headerOnly = OutboxSegment.scan(Array(bytes[..<(lastStart + 8)]) + zeros)
        #expect(headerOnly.damage == .tornTail(offset: lastStart) && headerOnly.payloads.count == 3)

        // Zeros, then data: not a run of empty records.
        let amid = OutboxSegment.scan(Array(bytes[..<lastStart]) + [UInt8](repeating: 0, count: 16) + Array(bytes[lastStart...]))
        #expect(amid.damage == .corrupt(offset: lastStart, reason: "zeros amid records before record 45"))
        #expect(amid.payloads.count == 3)
    }

    @Test func aHugeLengthDoesNotAllocateOrCrash() {
        var bytes = OutboxSegment.header(firstRecord: 1)
        bytes += [0xFF, 0xFF, 0xFF, 0x7F, 0, 0, 0, 0, 1, 2, 3]
        let scan = OutboxSegment.scan(bytes)
        #expect(scan.damage == .tornTail(offset: 16) && scan.payloads.isEmpty)
    }

    @Test func otherFilesAreNotSegments() {
        #expect(OutboxSegment.scan(Array("hello, this is not a segment".utf8)).damage == .badHeader)
        #expect(OutboxSegment.scan([]).damage == .tornTail(offset: 0))
    }
}

@Suite struct OutboxBatchTests {
    @Test func roundTripsAndRejectsDamage() throws {
        let batch = OutboxBatch(tenant: "acme", node: "web-1 ü", highestSeq: UInt64.max - 1, sampleCount: 2,
                                series: Array("m,host=a".utf8), body: Array(" b=1 1\n d=2 2\n".utf8))
        let bytes = batch.encode()
        #expect(bytes[0] == 2)
        #expect(try OutboxBatch(decoding: bytes[...]) == batch)
        for cut in 0..<bytes.count {
            #expect(throws: OutboxBatch.DecodeError.self) { try OutboxBatch(decoding: bytes[..<cut]) }
        }
        #expect(throws: OutboxBatch.DecodeError(description: "unknown outbox batch version 4")) {
            try OutboxBatch(decoding: ([4] + bytes.dropFirst())[...])
        }
    }

    @Test func theSeriesKeyIsStoredOnceAndPutBackOnEveryLine() throws {
        let series = Array("system_metrics,host=web-1,rack=r1,tenant=acme".utf8)
        let batch = OutboxBatch(tenant: "acme", node: "web-1", highestSeq: 2, sampleCount: 2,
                                series: series, body: Array(" cpu=1 1\n cpu=2 2\n".utf8))
        let expected = "system_metrics,host=web-1,rack=r1,tenant=acme cpu=1 1\nsystem_metrics,host=web-1,rack=r1,tenant=acme cpu=2 2\n"
        #expect(String(decoding: batch.lines, as: UTF8.self) == expected)
        // Stored once: the record is smaller than the lines it stands for.
        #expect(batch.encode().count < expected.utf8.count)
    }

    /// Recovery reads only the header of each record: the same tenant, node and highest seq as
    /// the full decode, for every version, and a clear error for a cut or unknown one.
    @Test func theHeaderAloneMatchesTheFullDecode() throws {
        var packed = PackedSamples()
        var drops = LineProtocolDrops()
        packed.append(Sample(seq: 9, timestampNs: 1, extra: [Gauge(name: "fan", value: 2.5)]), score: 0.5, anomalous: false, drops: &drops)
        let records = [
            OutboxBatch(tenant: "acme", node: "web-1", highestSeq: 9, sampleCount: 1, series: Array("m,host=a".utf8), packed: packed).encode(),
            OutboxBatch(tenant: "acme", node: "web-2", highestSeq: 7, sampleCount: 1, series: Array("m,host=a".utf8), body: Array(" b=1 1\n".utf8)).encode(),
            [1, 2, 0] + Array("t1".utf8) + [2, 0] + Array("n1".utf8) + [5, 0, 0, 0, 0, 0, 0, 0] + [0, 0, 0, 0] + [0, 0, 0, 0],
        ]
        for bytes in records {
            let full = try OutboxBatch(decoding: bytes[...])
            let header = try OutboxBatch.header(decoding: bytes[...])
            #expect(header.tenant == full.tenant && header.node == full.node && header.highestSeq == full.highestSeq)
            #expect(throws: OutboxBatch.DecodeError.self) { try OutboxBatch.header(decoding: bytes[..<10]) }
        }
        #expect(throws: OutboxBatch.DecodeError(description: "unknown outbox batch version 9")) {
            try OutboxBatch.header(decoding: ([9] + records[0].dropFirst())[...])
        }
    }

    @Test func versionOneRecordsStillDecode() throws {
        // u8 1, tenant, node, u64 highest seq, u32 count, u32 length, whole lines.
        var bytes: [UInt8] = [1, 4, 0] + Array("acme".utf8) + [2, 0] + Array("n1".utf8)
        bytes += [7, 0, 0, 0, 0, 0, 0, 0] + [1, 0, 0, 0]
        let lines = Array("m,host=n1 a=1 1\n".utf8)
        bytes += [UInt8(lines.count), 0, 0, 0] + lines
        let batch = try OutboxBatch(decoding: bytes[...])
        #expect(batch.tenant == "acme" && batch.node == "n1" && batch.highestSeq == 7 && batch.sampleCount == 1)
        #expect(batch.lines == lines)
    }
}
