import Foundation
import Glibc
import GridMonPosix
import GridMonWire
import Testing
@testable import GridMonAgent

/// The disk buffer on a real directory: what survives a reopen, what the bounds drop, and
/// what a crash mid-write leaves.
@Suite struct DiskSampleQueueTests {
    private func directory() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("gridmon-buffer-\(UUID())").path
    }

    private func sample(_ seq: UInt64, at ns: Int64 = Clock.unixNanos(), gauges: Int = 3) -> Sample {
        Sample(seq: seq, timestampNs: ns, cpuPercent: Double(seq), extra: (0..<gauges).map { Gauge(name: "g\($0)", value: Double(seq)) })
    }

    private func segmentFiles(_ dir: String) -> [String] {
        ((try? Files.list(dir + "/log")) ?? []).filter { $0.hasPrefix("segment-") }
    }

    @Test func recordsRoundTripAndDamageIsNamed() throws {
        let record = SampleRecord.encode(sample(9, at: 5), encoder: MessageEncoder())
        record.withUnsafeBytes { raw in
            #expect(SampleRecord.decode(raw) == .record(sample(9, at: 5), bytes: record.count))
            #expect(SampleRecord.decode(UnsafeRawBufferPointer(rebasing: raw[..<(record.count - 1)])) == .incomplete)
        }
        var flipped = record
        flipped[record.count - 2] ^= 0xFF
        flipped.withUnsafeBytes { #expect(SampleRecord.decode($0) == .corrupt("checksum mismatch")) }
        var huge = record
        huge[3] = 0x7F  // a length of ~2 GiB is refused before any allocation
        huge.withUnsafeBytes { guard case .corrupt = SampleRecord.decode($0) else { Issue.record("accepted"); return } }
    }

    @Test func unacknowledgedSamplesSurviveAReopenAndNumberingContinues() throws {
        let dir = directory()
        defer { DiskSampleQueue.removeTree(dir + "/log"); DiskSampleQueue.removeTree(dir) }
        do {
            let queue = try DiskSampleQueue(directory: dir)
            #expect(!queue.numbered && queue.lastSeq == 0)
            for seq: UInt64 in 1...5 { queue.append(sample(seq)) }
            #expect(queue.renumber(after: 100) == 105 && queue.numbered)
            for seq: UInt64 in 106...110 { queue.append(sample(seq)) }
            #expect(queue.takeUnsent(max: 3).map(\.seq) == [101, 102, 103])
            queue.acknowledge(104)
            queue.sync()
        }
        let reopened = try DiskSampleQueue(directory: dir)
        #expect(reopened.numbered && reopened.lastSeq == 110 && reopened.count == 6)
        #expect(reopened.takeUnsent(max: 100).map(\.seq) == Array(105...110))
        #expect(reopened.takeUnsent(max: 100).isEmpty)
        reopened.resendAll()
        #expect(reopened.takeUnsent(max: 2).map(\.seq) == [105, 106])
        // Two agents never share one buffer.
        #expect(throws: SyscallError.self) { _ = try DiskSampleQueue(directory: dir) }
    }

    @Test func samplesAlreadyAboveTheServersSeqAreNotRewritten() throws {
        let dir = directory()
        defer { DiskSampleQueue.removeTree(dir + "/log"); DiskSampleQueue.removeTree(dir) }
        let queue = try DiskSampleQueue(directory: dir)
        for seq: UInt64 in 1...5 { queue.append(sample(seq)) }
        let files = segmentFiles(dir)
        // The server knows nothing of the node: the held seqs stand as they are (a full disk
        // once made the copy fail and the agent never connect).
        #expect(queue.renumber(after: 0) == 5 && queue.numbered)
        #expect(segmentFiles(dir) == files && queue.takeUnsent(max: 10).map(\.seq) == [1, 2, 3, 4, 5])
        queue.append(sample(6))
        #expect(queue.takeUnsent(max: 10).map(\.seq) == [6])
    }

    @Test func acknowledgedSegmentsAreDeletedButTheNewestSurvives() throws {
        let dir = directory()
        defer { DiskSampleQueue.removeTree(dir + "/log"); DiskSampleQueue.removeTree(dir) }
        var limits = DiskSampleQueue.Limits()
        limits.segmentBytes = 4096
        do {
            let queue = try DiskSampleQueue(directory: dir, limits: limits)
            _ = queue.renumber(after: 0)
            for seq: UInt64 in 1...400 { queue.append(sample(seq)) }
            #expect(segmentFiles(dir).count > 5)
            queue.acknowledge(400)
            #expect(queue.count == 0 && segmentFiles(dir).count == 1)
            queue.sync()
        }
        let reopened = try DiskSampleQueue(directory: dir, limits: limits)
        #expect(reopened.lastSeq == 400 && reopened.count == 0)
    }

    @Test func boundsDropTheOldestAndCountAcrossRestarts() throws {
        let dir = directory()
        defer { DiskSampleQueue.removeTree(dir + "/log"); DiskSampleQueue.removeTree(dir) }
        var limits = DiskSampleQueue.Limits()
        limits.maxBytes = 64 * 1024
        limits.segmentBytes = 8 * 1024
        do {
            let queue = try DiskSampleQueue(directory: dir, limits: limits)
            _ = queue.renumber(after: 0)
            for seq: UInt64 in 1...3000 { queue.append(sample(seq, gauges: 10)) }
            let onDisk = try segmentFiles(dir).reduce(0) { $0 + (try Files.read(dir + "/log/" + $1)).count }
            #expect(onDisk <= limits.maxBytes)
            #expect(queue.dropped > 0 && queue.dropped + UInt64(queue.count) == 3000)
            // The oldest went; what is left is the newest, in order.
            let held = queue.takeUnsent(max: 10_000).map(\.seq)
            #expect(held.last == 3000 && held == Array(held[0]...3000))
            queue.sync()
        }
        let reopened = try DiskSampleQueue(directory: dir, limits: limits)
        #expect(reopened.dropped > 0 && reopened.dropped + UInt64(reopened.count) == 3000)

        // Age: segments whose newest sample is older than the limit go, the newest stays.
        var clock: Int64 = 10_000_000_000_000
        let ageDir = directory()
        defer { DiskSampleQueue.removeTree(ageDir + "/log"); DiskSampleQueue.removeTree(ageDir) }
        var aged = DiskSampleQueue.Limits()
        aged.segmentBytes = 4096
        aged.maxAgeNs = 60_000_000_000
        let queue = try DiskSampleQueue(directory: ageDir, limits: aged, now: { clock })
        for seq: UInt64 in 1...200 { queue.append(sample(seq, at: clock)) }
        #expect(queue.count == 200 && queue.dropped == 0)
        clock += 3_600_000_000_000  // an hour passes
        queue.append(sample(201, at: clock))
        let held = queue.takeUnsent(max: 1000).map(\.seq)
        #expect(held.last == 201 && held.count < 100 && queue.dropped == 201 - UInt64(held.count))
    }

    @Test func aTornTailIsCutAndEverythingBeforeItKept() throws {
        let dir = directory()
        defer { DiskSampleQueue.removeTree(dir + "/log"); DiskSampleQueue.removeTree(dir) }
        do {
            let queue = try DiskSampleQueue(directory: dir)
            _ = queue.renumber(after: 0)
            for seq: UInt64 in 1...10 { queue.append(sample(seq)) }
        }
        let segment = dir + "/log/" + segmentFiles(dir)[0]
        let whole = try Files.read(segment)
        // A crash mid-write: half a record at the end.
        let record = SampleRecord.encode(sample(11), encoder: MessageEncoder())
        try Files.append(segment, Array(record.prefix(record.count / 2)))
        let reopened = try DiskSampleQueue(directory: dir)
        #expect(reopened.takeUnsent(max: 100).map(\.seq) == Array(1...10))
        #expect(try Files.read(segment).count == whole.count)
        reopened.append(sample(11))
        reopened.resendAll()
        #expect(reopened.takeUnsent(max: 100).map(\.seq) == Array(1...11))
    }

    @Test func anInterruptedRenumberLeavesOneConsistentLog() throws {
        let dir = directory()
        defer { DiskSampleQueue.removeTree(dir + "/log"); DiskSampleQueue.removeTree(dir) }
        do {
            let queue = try DiskSampleQueue(directory: dir)
            for seq: UInt64 in 1...4 { queue.append(sample(seq)) }
        }
        // A crash after log.new was written but before the swap: the old log stands.
        try DiskSampleQueue.makeDirectory(dir + "/log.new")
        try Files.writeAtomically(dir + "/log.new/numbered", [])
        let queue = try DiskSampleQueue(directory: dir)
        #expect(!queue.numbered && queue.takeUnsent(max: 10).map(\.seq) == [1, 2, 3, 4])
        #expect(access(dir + "/log.new", F_OK) != 0)
    }
}
