import Glibc
import GridMonPosix
import GridMonStore
import Synchronization

/// What opening an outbox found and repaired.
public struct OutboxRecovery: Sendable, Equatable {
    public var segments = 0
    public var records = 0
    /// Torn tails cut off (writes a crash interrupted; never acknowledged).
    public var truncatedBytes = 0
    /// Segments moved aside as corrupt (renamed to `*.quarantined`), with the reason.
    public var quarantined: [String] = []
    /// The directory was readable by other users and was made 0700.
    public var tightenedPermissions = false
}

/// GridMon's durable outbox: an append-only log of records in segment files, fsync'ed in
/// groups (group commit), replayed on start, deleted a segment at a time once delivered.
///
/// Records are numbered 1, 2, 3, … across segments; a segment file is named by its first
/// record (`00000000000000000001.seg`). `append` buffers a record in memory and returns its
/// number; `commit` writes everything buffered and fsyncs, after which those records are
/// durable — the server acknowledges samples to agents only then. Bounded: `totalBytes`
/// (files plus buffer) is what backpressure compares to the configured maximum.
///
/// Threading: `append` from any thread; `commit`, `read`, `deleteSegments` and `retain` from
/// one owner thread at a time (the committer). Errors: file errors throw `SyscallError`
/// naming the call and path; the caller keeps the records and retries.
public final class Outbox: @unchecked Sendable {  // mutable state behind `state`; file handles used by the committer only
    public let directory: String
    public let segmentBytes: Int

    private struct State {
        var pending: [UInt8] = []
        var pendingRecords = 0
        var nextRecord: UInt64 = 1
        var durableRecord: UInt64 = 0
        var diskBytes = 0
        /// Bytes taken out of `pending` by a commit that is still writing them: counted in
        /// `totalBytes`, or the outbox looked smaller for the length of every write + fsync and
        /// a server under backpressure read past its limit (commits run back to back now).
        var committing = 0
    }

    private let state = Mutex(State())
    /// The segment being written; touched by the committer only.
    private var current: SegmentFile?
    /// The other half of the pending buffer, empty, swapped in at each commit; committer only.
    private var spare: [UInt8] = []
    /// Segments on disk: first record number and path, oldest first; and, when the newest one
    /// is full and closed (no record will join it), its last record, which makes it
    /// deletable too. Locked together: the committer appends and closes, a shipper thread
    /// reads and deletes.
    private struct Segments {
        var list: [(first: UInt64, path: String)] = []
        var closedLast: UInt64?
        /// Where the newest segment's durable records end, while it is being written: readers
        /// stop there rather than read the zeros laid down past it.
        var newestEnd: Int?
    }
    private let segments = Mutex(Segments())

    private init(directory: String, segmentBytes: Int) {
        self.directory = directory
        self.segmentBytes = segmentBytes
        preallocateBytes = min(Self.preallocateStep, segmentBytes)
    }

    /// Zeros laid down ahead of the records in the segment being written (`SegmentFile`):
    /// one commit in 1 MiB of records changes the file's size. 1 MiB, not more: that much
    /// is written back in 1.2–1.6 ms on this machine's disk, 4 MiB in 7–18 ms.
    static let preallocateStep = 1 << 20
    private let preallocateBytes: Int
    /// Zeros are laid down only after commits smaller than this. Writing them costs about
    /// as much as writing records (the server's CPU per sample rose 12 % with 64-sample
    /// frames, ~230 KB per commit, when they were always laid down), and what they save is
    /// per commit (the size written with each fdatasync: 10–15 µs of CPU and 0.1–0.3 ms of
    /// wait here), so they pay for small commits — many agents each sending a little,
    /// where acks wait on fdatasync — and not for large ones, whose data dominates.
    static let preallocateBelowCommitBytes = 64 << 10
    /// Bytes the last commit wrote; committer only.
    private var lastCommitBytes = 0

    /// Opens (or creates) the outbox in `directory` and recovers it: torn tails are truncated,
    /// corrupt segments quarantined, and every intact record is passed to `replay`, in order.
    public static func open(
        directory: String, segmentBytes: Int = 64 << 20,
        replay: (_ record: UInt64, _ payload: ArraySlice<UInt8>) -> Void = { _, _ in }
    ) throws(SyscallError) -> (Outbox, OutboxRecovery) {
        // 0700: every tenant's telemetry is in here (issue #10, defect 10).
        if mkdir(directory, 0o700) != 0 && errno != EEXIST { throw SyscallError(call: "mkdir(\(directory))", errno: errno) }
        var recovery = OutboxRecovery()
        var info = stat()
        if stat(directory, &info) == 0 && info.st_mode & 0o077 != 0 {
            try syscallChecked("chmod(\(directory))") { chmod(directory, info.st_mode & 0o700) }
            recovery.tightenedPermissions = true
        }
        let outbox = Outbox(directory: directory, segmentBytes: segmentBytes)
        var next: UInt64 = 1
        var disk = 0
        let names = try Files.list(directory).filter { $0.hasSuffix(".seg") }.sorted()
        for name in names {
            let path = directory + "/" + name
            let bytes = try Files.read(path)
            let scan = OutboxSegment.scan(bytes)
            switch scan.damage {
            case .badHeader, .corrupt:
                // Keep it for a human; deliver what was intact before the damage.
                try quarantine(path, &recovery, scan)
                for (i, range) in scan.payloads.enumerated() { replay(scan.firstRecord + UInt64(i), bytes[range]) }
                next = max(next, scan.firstRecord + UInt64(scan.payloads.count))
                continue
            case .tornTail(let offset):
                if offset < OutboxSegment.headerSize {
                    unlink(path)  // a segment whose creation the crash interrupted
                    recovery.truncatedBytes += bytes.count
                    continue
                }
                try SegmentFile.truncate(path, to: offset)
                // (The torn write's bytes, not the zeros laid down past them.)
                recovery.truncatedBytes += (bytes.lastIndex { $0 != 0 }.map { $0 + 1 } ?? offset) - offset
            case .none:
                // Zeros past the records: the segment was being written. Cut (not counted as
                // torn: nothing was lost) so that every segment but the one written next is exact.
                if scan.validLength < bytes.count { try SegmentFile.truncate(path, to: scan.validLength) }
            }
            // What a crash left written but maybe unsynced is made durable before it is
            // announced as durable (Welcome.durable_seq; issue #18, item 4).
            try SegmentFile.sync(path)
            recovery.segments += 1
            recovery.records += scan.payloads.count
            for (i, range) in scan.payloads.enumerated() { replay(scan.firstRecord + UInt64(i), bytes[range]) }
            next = max(next, scan.firstRecord + UInt64(scan.payloads.count))
            outbox.segments.withLock { $0.list.append((scan.firstRecord, path)) }
            disk += scan.validLength
        }
        outbox.state.withLock { state in
            state.nextRecord = next
            state.durableRecord = next - 1
            state.diskBytes = disk
        }
        if let last = outbox.segments.withLock({ $0.list.last }) {
            let file = try SegmentFile(path: last.path, preallocateBytes: outbox.preallocateBytes)
            outbox.current = file
            outbox.segments.withLock { $0.newestEnd = file.size }
        }
        return (outbox, recovery)
    }

    private static func quarantine(_ path: String, _ recovery: inout OutboxRecovery, _ scan: OutboxSegment.Scan) throws(SyscallError) {
        let target = path + ".quarantined"
        try syscallChecked("rename(\(path))") { rename(path, target) }
        let reason: String
        switch scan.damage {
        case .corrupt(let offset, let why): reason = "\(why) at byte \(offset)"
        default: reason = "not an outbox segment"
        }
        recovery.quarantined.append("\(target): \(reason)")
    }

    /// Buffers one record; returns its number. Durable after the next `commit()`.
    /// The payload must be at most `OutboxSegment.maxRecordSize` bytes (callers split larger
    /// batches; `OutboxSegment.recordHeader` explains the bound).
    @discardableResult
    public func append(_ payload: [UInt8]) -> UInt64 {
        let header = OutboxSegment.recordHeader(payload)  // the CRC outside the lock: reactor threads share it
        return state.withLock { state in
            state.pending += header
            state.pending += payload
            state.pendingRecords += 1
            defer { state.nextRecord += 1 }
            return state.nextRecord
        }
    }

    /// The highest record number that is on disk and fsync'ed.
    public var durableRecord: UInt64 { state.withLock { $0.durableRecord } }

    /// Bytes held: segment files plus records not yet written.
    public var totalBytes: Int { state.withLock { $0.diskBytes + $0.pending.count + $0.committing } }

    /// Writes every buffered record and fsyncs (group commit). Returns the durable record.
    /// On error the records stay buffered and the next commit tries again.
    @discardableResult
    public func commit() throws(SyscallError) -> UInt64 {
        // The buffer is swapped for the spare one, which keeps its capacity from commit to
        // commit: no fresh pages to fault in for every group commit.
        var fresh = spare
        spare = []
        let (bytes, records, lastRecord) = state.withLock { state -> ([UInt8], Int, UInt64) in
            defer {
                state.committing = state.pending.count
                state.pending = fresh
                state.pendingRecords = 0
            }
            return (state.pending, state.pendingRecords, state.nextRecord - 1)
        }
        defer {
            fresh = bytes  // (after the write: the only reference left, so it keeps its storage)
            fresh.removeAll(keepingCapacity: true)
            spare = fresh
        }
        guard records > 0 else { return durableRecord }
        do {
            let firstRecord = lastRecord - UInt64(records) + 1
            if current == nil || current!.size >= segmentBytes {
                let path = directory + "/" + Self.name(firstRecord)
                let file = try SegmentFile(path: path, preallocateBytes: preallocateBytes)
                if file.size == 0 {
                    // Synced on its own, so a failed first record cannot cut the header off.
                    try file.append(OutboxSegment.header(firstRecord: firstRecord))
                    try file.sync()
                }
                try SegmentFile.syncDirectory(directory)
                segments.withLock { segments in
                    segments.list.append((firstRecord, path))
                    segments.closedLast = nil
                    segments.newestEnd = file.size
                }
                current = file
                state.withLock { $0.diskBytes += OutboxSegment.headerSize }
            }
            try current!.append(bytes)
            try current!.sync()
            lastCommitBytes = bytes.count
        } catch {
            // Put them back in front of anything appended meanwhile; they keep their numbers.
            state.withLock { state in
                state.pending = bytes + state.pending
                state.pendingRecords += records
                state.committing = 0
            }
            throw error
        }
        // Readers learn where the records end before they learn the records are durable.
        segments.withLock { $0.newestEnd = current!.size }
        let durable = state.withLock { state in
            state.diskBytes += bytes.count
            state.committing = 0
            state.durableRecord = lastRecord
            return lastRecord
        }
        // A full segment is closed now rather than at the next commit, so that once delivered
        // it can go even if nothing more arrives (a paused server appends nothing).
        if current!.size >= segmentBytes {
            // Best effort: zeros left behind are cut at the next start (and ignored by readers).
            try? current!.seal()
            current = nil
            segments.withLock {
                $0.closedLast = lastRecord
                $0.newestEnd = nil
            }
        }
        return durable
    }

    /// Lays down the zeros the next commits will write over, when they run short, and
    /// starts their writeback (`SegmentFile.prepareAhead`). Called by the committer between
    /// commits, once the acks of the last one are out; the same thread as `commit`.
    public func prepareNextCommits() {
        guard lastCommitBytes < Self.preallocateBelowCommitBytes else { return }
        current?.prepareAhead()
    }

    /// Durable records from `first` on, as (number, payload), oldest first: at most `limit`
    /// records, and no more once `maxBytes` of payload are in (at least one record, whatever
    /// its size): records can be large — one stream's whole socket read — so a count alone
    /// does not bound the memory.
    public func read(from first: UInt64, limit: Int, maxBytes: Int = .max) throws(SyscallError) -> [(UInt64, [UInt8])] {
        var bytes = 0
        let durable = durableRecord
        let (list, newestEnd) = segments.withLock { ($0.list, $0.newestEnd) }
        var out: [(UInt64, [UInt8])] = []
        // Where an earlier read stopped, when this read continues it: read on from that offset
        // instead of scanning the segment again (the shipper's readers each go in order).
        var position: ReadPosition?
        if let slot = readPositions.firstIndex(where: { $0.nextRecord == first }),
           let index = list.firstIndex(where: { $0.path == readPositions[slot].path }) {
            position = readPositions.remove(at: slot)
            position!.index = index
        } else if let index = list.lastIndex(where: { $0.first <= first }) ?? (list.isEmpty ? nil : 0) {
            // (Records before the oldest segment were delivered and deleted: start at the oldest.)
            position = ReadPosition(path: list[index].path, index: index, offset: OutboxSegment.headerSize, nextRecord: list[index].first)
        }
        guard var at = position else { return [] }
        // Reads go 8 MiB at a time (less when `maxBytes` asks for less: the bytes past it would
        // be read only to be dropped), or a whole record when one is larger (up to maxRecordSize).
        let normalChunk = maxBytes >= 8 << 20 ? 8 << 20 : max(64 << 10, maxBytes + OutboxSegment.recordHeaderSize)
        var chunkBytes = normalChunk
        while out.count < limit && bytes < maxBytes && at.nextRecord <= durable {
            var asked = chunkBytes
            if at.index == list.count - 1, let end = newestEnd {
                guard end > at.offset else { break }
                asked = min(asked, end - at.offset)
            }
            let chunk = try Files.read(at.path, from: at.offset, maxBytes: asked)
            chunkBytes = normalChunk
            var cursor = 0
            var progressed = false
            while out.count < limit && bytes < maxBytes && at.nextRecord <= durable && chunk.count - cursor >= OutboxSegment.recordHeaderSize {
                let length = Int(UInt32(littleEndian: chunk[cursor..<cursor + 4].withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }))
                if length == 0 { break }  // zeros laid down past the records: the segment ends here
                guard chunk.count - cursor - OutboxSegment.recordHeaderSize >= length else {
                    // The rest is in the next chunk; a record larger than a chunk is read whole.
                    if cursor == 0 && chunk.count == asked && length <= OutboxSegment.maxRecordSize {
                        chunkBytes = OutboxSegment.recordHeaderSize + length
                        progressed = true
                    }
                    break
                }
                let start = cursor + OutboxSegment.recordHeaderSize
                if at.nextRecord >= first {
                    out.append((at.nextRecord, Array(chunk[start..<start + length])))
                    bytes += length
                }
                cursor = start + length
                at.offset += OutboxSegment.recordHeaderSize + length
                at.nextRecord += 1
                progressed = true
            }
            if progressed { continue }
            // Nothing more in this segment: go on to the next one, if it continues the numbering.
            guard at.index + 1 < list.count, list[at.index + 1].first == at.nextRecord else { break }
            at = ReadPosition(path: list[at.index + 1].path, index: at.index + 1, offset: OutboxSegment.headerSize, nextRecord: at.nextRecord)
        }
        readPositions.append(at)
        if readPositions.count > 8 { readPositions.removeFirst() }
        return out
    }

    /// Where a reader stopped: segment, byte offset, next record number.
    private struct ReadPosition {
        var path: String
        var index: Int
        var offset: Int
        var nextRecord: UInt64
    }
    /// The last few readers' positions (the shipper's shared reader and catch-up readers);
    /// used from the shipper thread only.
    private var readPositions: [ReadPosition] = []

    /// Deletes every segment whose records are all at or below `record` (delivered), keeping
    /// the one being written. Returns the bytes freed.
    @discardableResult
    public func deleteSegments(upTo record: UInt64) throws(SyscallError) -> Int {
        try removeOldestSegments { _, list, closedLast in (list.count > 1 ? list[1].first - 1 : closedLast!) <= record }
    }

    /// Deletes the oldest segments (never the one being written) until at least `bytes` were
    /// freed or only the current segment is left. Returns the bytes freed.
    @discardableResult
    public func deleteOldest(bytesOver bytes: Int) throws(SyscallError) -> Int {
        try removeOldestSegments { freed, _, _ in freed < bytes }
    }

    /// Deletes the oldest segments last written before `unixSeconds` (file modification time:
    /// a segment is written in record order, so its last write dates its newest record),
    /// never the one being written. Returns the bytes freed.
    @discardableResult
    public func deleteSegments(lastWrittenBefore unixSeconds: Int) throws(SyscallError) -> Int {
        try removeOldestSegments { _, list, _ in
            var info = stat()
            guard stat(list[0].path, &info) == 0 else { return false }
            return info.st_mtim.tv_sec < unixSeconds
        }
    }

    /// Unlinks the oldest segment while `more(bytesFreedSoFar, segments, closedLast)` says so,
    /// never the one being written (the newest, unless closed); then syncs the directory and
    /// the byte count. Returns the bytes freed.
    private func removeOldestSegments(while more: (Int, [(first: UInt64, path: String)], UInt64?) -> Bool) throws(SyscallError) -> Int {
        var freed = 0
        var failure: SyscallError?
        segments.withLock { segments in
            while segments.list.count > 1 || (segments.list.count == 1 && segments.closedLast != nil),
                  more(freed, segments.list, segments.closedLast) {
                let path = segments.list[0].path
                var info = stat()
                let size = stat(path, &info) == 0 ? Int(info.st_size) : 0
                if unlink(path) != 0 {
                    failure = SyscallError(call: "unlink(\(path))", errno: errno)
                    return
                }
                segments.list.removeFirst()
                if segments.list.isEmpty { segments.closedLast = nil }
                freed += size
            }
        }
        if freed > 0 {
            try SegmentFile.syncDirectory(directory)
            state.withLock { $0.diskBytes -= freed }
        }
        if let failure { throw failure }
        return freed
    }

    /// Segment files on disk, oldest first (for retention and tests).
    public var segmentPaths: [String] { segments.withLock { $0.list.map(\.path) } }

    static func name(_ firstRecord: UInt64) -> String {
        let digits = String(firstRecord)
        return String(repeating: "0", count: max(0, 20 - digits.count)) + digits + ".seg"
    }
}
