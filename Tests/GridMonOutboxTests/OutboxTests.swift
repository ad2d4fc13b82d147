import Foundation
import Glibc
import GridMonPosix
import GridMonStore
import Testing
@testable import GridMonOutbox

/// The outbox on real files in a temporary directory.
@Suite struct OutboxTests {
    let directory: String

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("gridmon-outbox-\(UUID())").path
    }

    private func payload(_ i: Int) -> [UInt8] { Array("record \(i) ".utf8) + [UInt8](repeating: UInt8(i % 251), count: i % 300) }

    private func reopen() throws -> (Outbox, OutboxRecovery, [(UInt64, [UInt8])]) {
        var replayed: [(UInt64, [UInt8])] = []
        let (outbox, recovery) = try Outbox.open(directory: directory, segmentBytes: 4096) { replayed.append(($0, Array($1))) }
        return (outbox, recovery, replayed)
    }

    @Test func committedRecordsSurviveAReopenInOrderAndNumberingContinues() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        do {
            let (outbox, recovery, replayed) = try reopen()
            #expect(recovery == OutboxRecovery() && replayed.isEmpty)
            for i in 1...100 {
                #expect(outbox.append(payload(i)) == UInt64(i))
                if i == 5 { #expect(outbox.durableRecord == 0) }
                if i % 10 == 0 { #expect(try outbox.commit() == UInt64(i)) }  // group commits
            }
            #expect(outbox.segmentPaths.count >= 2)  // 4 KiB segments: it rotated
            _ = outbox.append(payload(101))  // never committed: lost with the process, never acked
        }
        let (outbox, recovery, replayed) = try reopen()
        #expect(recovery.records == 100 && recovery.truncatedBytes == 0 && recovery.quarantined.isEmpty)
        #expect(replayed.map(\.0) == Array(1...100))
        #expect(replayed.map(\.1) == (1...100).map(payload))
        #expect(outbox.append(payload(7)) == 101)
        #expect(try outbox.commit() == 101)
        #expect(try outbox.read(from: 99, limit: 10).map(\.0) == [99, 100, 101])
    }

    @Test func readsStopAtTheirByteBudgetAndARecordLargerThanAReadChunkStillComesWhole() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let (outbox, _, _) = try reopen()
        let big = (0..<(10 << 20)).map { UInt8(truncatingIfNeeded: $0 &* 31) }  // over the 8 MiB read chunk
        outbox.append(payload(1))
        outbox.append(big)
        outbox.append(payload(3))
        outbox.append(payload(4))
        try outbox.commit()
        #expect(try outbox.read(from: 1, limit: 100, maxBytes: 1).map(\.0) == [1])  // at least one record
        let read = try outbox.read(from: 2, limit: 100, maxBytes: 1)
        #expect(read.map(\.0) == [2] && read[0].1 == big)
        #expect(try outbox.read(from: 3, limit: 100, maxBytes: payload(3).count + 1).map(\.0) == [3, 4])
        #expect(try outbox.read(from: 1, limit: 100).map(\.0) == [1, 2, 3, 4])
    }

    /// The shipper reads a little per turn (its read chunk then shrinks to the budget): reads
    /// that continue one another still yield every record once, in order, across segments.
    @Test func smallBudgetReadsContinueEachOtherWithoutLosingOrRepeatingARecord() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let (outbox, _, _) = try reopen()
        for i in 1...600 {
            outbox.append(payload(i))
            if i % 20 == 0 { try outbox.commit() }  // a segment is closed at a commit past 4 KiB
        }
        #expect(outbox.segmentPaths.count > 10)
        var seen: [(UInt64, [UInt8])] = []
        var calls = 0
        while calls < 1000, case let read = try outbox.read(from: UInt64(seen.count + 1), limit: 256, maxBytes: 700), !read.isEmpty {
            #expect(read.reduce(0) { $0 + $1.1.count } < 700 + 320)  // the budget, plus at most one record
            seen += read
            calls += 1
        }
        #expect(seen.map(\.0) == (1...600).map(UInt64.init))
        #expect(seen.map(\.1) == (1...600).map(payload))
        #expect(calls > 100)
    }

    @Test func aTornTailIsTruncatedAndTheOutboxCarriesOn() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        do {
            let (outbox, _, _) = try reopen()
            for i in 1...10 { outbox.append(payload(i)) }
            try outbox.commit()
        }
        // A crash mid-write: half a record at the end of the last segment.
        let last = try #require(try Files.list(directory).filter { $0.hasSuffix(".seg") }.sorted().last)
        let handle = try #require(FileHandle(forWritingAtPath: directory + "/" + last))
        handle.seekToEndOfFile()
        handle.write(Data([40, 0, 0, 0, 1, 2, 3, 4, 9, 9, 9]))
        handle.closeFile()

        let (outbox, recovery, replayed) = try reopen()
        #expect(recovery.truncatedBytes == 11 && recovery.quarantined.isEmpty)
        #expect(replayed.map(\.0) == Array(1...10))
        outbox.append(payload(11))
        try outbox.commit()
        let (_, again, replayedAgain) = try reopen()
        #expect(again.truncatedBytes == 0 && replayedAgain.map(\.0) == Array(1...11))
    }

    /// The segment being written has zeros laid down ahead of its records, so that a commit's
    /// fdatasync need not change the file's size. A crash leaves them (here: the files copied
    /// while the outbox is open); recovery replays every record, cuts the zeros without
    /// counting them as torn, and the outbox carries on. A clean close leaves exact files.
    @Test func zerosLaidDownAheadAreCutAtRecoveryAndAtCloseAndNeverRead() throws {
        let crashed = directory + "-crashed"
        defer {
            try? FileManager.default.removeItem(atPath: directory)
            try? FileManager.default.removeItem(atPath: crashed)
        }
        do {
            let (outbox, _, _) = try reopen()
            for i in 1...25 {
                outbox.append(payload(i))
                if i % 5 == 0 {
                    try outbox.commit()
                    outbox.prepareNextCommits()  // as the committer does between commits
                }
            }
            let last = try #require(outbox.segmentPaths.last)
            let onDisk = try Files.read(last)
            // A whole step of zeros past the records (4 KiB here: the segment size).
            #expect(onDisk.count - OutboxSegment.scan(onDisk).validLength >= 4096 && onDisk.last == 0)
            // Readers stop at the records, whatever lies past them.
            #expect(try outbox.read(from: 1, limit: 100).map(\.1) == (1...25).map(payload))
            try FileManager.default.copyItem(atPath: directory, toPath: crashed)
        }
        // In the crashed copy, a write the crash cut short: half a record, into the zeros.
        let newest = crashed + "/" + (try #require(try Files.list(crashed).sorted().last))
        let end = OutboxSegment.scan(try Files.read(newest)).validLength
        let handle = try #require(FileHandle(forWritingAtPath: newest))
        handle.seek(toFileOffset: UInt64(end))
        handle.write(Data([40, 0, 0, 0, 1, 2, 3, 4, 9, 9, 9]))
        handle.closeFile()
        for segment in try Files.list(directory) {
            let bytes = try Files.read(directory + "/" + segment)
            #expect(OutboxSegment.scan(bytes).validLength == bytes.count, "\(segment) is exact after a close")
        }
        var replayed: [(UInt64, [UInt8])] = []
        let (outbox, recovery) = try Outbox.open(directory: crashed, segmentBytes: 4096) { replayed.append(($0, Array($1))) }
        #expect(recovery.truncatedBytes == 11 && recovery.quarantined.isEmpty)  // the torn bytes, not the zeros
        #expect(replayed.map(\.0) == Array(1...25) && replayed.map(\.1) == (1...25).map(payload))
        for path in outbox.segmentPaths {
            let bytes = try Files.read(path)
            #expect(OutboxSegment.scan(bytes).validLength == bytes.count, "\(path) is exact after recovery")
        }
        outbox.append(payload(26))
        try outbox.commit()
        #expect(try outbox.read(from: 24, limit: 10).map(\.0) == [24, 25, 26])
    }

    @Test func aCorruptSegmentIsQuarantinedNotRetried() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        do {
            let (outbox, _, _) = try reopen()
            for i in 1...200 {
                outbox.append(payload(i))
                if i % 10 == 0 { try outbox.commit() }
            }
        }
        let first = try #require(try Files.list(directory).filter { $0.hasSuffix(".seg") }.sorted().first)
        var bytes = try Files.read(directory + "/" + first)
        bytes[26] ^= 0xFF  // inside the first record's payload (bytes 24...), with intact data after it
        try Data(bytes).write(to: URL(fileURLWithPath: directory + "/" + first))

        let (_, recovery, replayed) = try reopen()
        #expect(recovery.quarantined.count == 1)
        #expect(recovery.quarantined.first?.contains("CRC-32C mismatch in record 1") == true)
        #expect(try Files.list(directory).contains(first + ".quarantined"))
        #expect(!replayed.isEmpty && replayed.first!.0 > 1)  // later segments still replay
        // Opening again does not trip over the quarantined file.
        let (_, second, _) = try reopen()
        #expect(second.quarantined.isEmpty)
    }

    @Test func deliveredSegmentsAreDeletedAndSizeTracked() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let (outbox, _, _) = try reopen()
        for i in 1...200 {
            outbox.append(payload(i))
            if i % 10 == 0 { try outbox.commit() }
        }
        let before = outbox.totalBytes
        let segmentsBefore = outbox.segmentPaths.count
        #expect(segmentsBefore >= 3)
        let freed = try outbox.deleteSegments(upTo: 120)
        #expect(freed > 0 && outbox.totalBytes == before - freed)
        #expect(outbox.segmentPaths.count < segmentsBefore)
        // Nothing above 120 was deleted.
        let remaining = try outbox.read(from: 1, limit: 1000).map(\.0)
        #expect(remaining.first! <= 121 && remaining.last == 200)
        #expect(try outbox.deleteSegments(upTo: 1000) >= 0)
        // The last segment filled up with the last commit, so it is closed: delivered, it goes
        // too (a paused server appends nothing that would roll it over). An open one stays.
        #expect(outbox.segmentPaths.isEmpty && outbox.totalBytes == 0)
        outbox.append(payload(201))
        try outbox.commit()
        #expect(try outbox.read(from: 1, limit: 10).map(\.0) == [201])  // numbering continues
        #expect(try outbox.deleteSegments(upTo: 1000) == 0 && outbox.segmentPaths.count == 1)
    }

    @Test func segmentsPastTheAgeLimitAreDeleted() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let (outbox, _, _) = try reopen()
        for i in 1...200 {
            outbox.append(payload(i))
            if i % 10 == 0 { try outbox.commit() }
        }
        let paths = outbox.segmentPaths
        #expect(paths.count >= 3)
        // The two oldest segments were last written a day ago.
        let dayAgo = Date().addingTimeInterval(-86_400)
        for path in paths.prefix(2) { try FileManager.default.setAttributes([.modificationDate: dayAgo], ofItemAtPath: path) }
        let freed = try outbox.deleteSegments(lastWrittenBefore: Int(Date().timeIntervalSince1970) - 3600)
        #expect(freed > 0)
        #expect(outbox.segmentPaths == Array(paths.dropFirst(2)))
    }

    @Test func unwritableDirectoryIsANamedError() {
        #expect(throws: SyscallError.self) { _ = try Outbox.open(directory: "/proc/gridmon-cannot-exist/outbox") }
    }
}
