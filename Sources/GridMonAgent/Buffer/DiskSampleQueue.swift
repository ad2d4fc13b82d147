import Glibc
import GridMonPosix
import GridMonWire

/// The agent's disk buffer (`--buffer-dir`): unacknowledged samples survive restarts,
/// crashes and SIGTERM during an outage (issue #12).
///
/// Layout of `directory`: `log/segment-<first seq, 20 digits>.log` files of `SampleRecord`s,
/// appended one write per sample (so a SIGKILL loses nothing written; `sync()`, called once
/// per interval, fdatasyncs for power loss); `log/numbered`, present once the samples follow
/// the server's numbering; `state` (acknowledged seq, dropped count; rewritten atomically, at
/// most once per `sync()`: a stale one only resends what the server then dedups); `lock`, so
/// two agents never share a buffer.
///
/// Bounded: past `maxBytes` in all, for segments whose newest sample is older than
/// `maxAgeNs`, or when the filesystem is full (ENOSPC, EDQUOT), the oldest segment is deleted
/// and its unacknowledged samples are counted in `dropped`; a sample that still cannot be
/// written is counted there too (`writeFailures`). The segment being written is never deleted, so the highest seq survives and
/// numbering continues after a restart. On open, a torn or corrupt tail (a crash mid-write)
/// is cut off at the last whole record and logged. Threading: owned by the agent's loop.
public final class DiskSampleQueue: SampleQueue {
    public struct Limits: Sendable {
        public var maxBytes = 128 << 20
        public var maxAgeNs: Int64 = 86_400 * 1_000_000_000
        /// Segments roll at this size (at most a quarter of `maxBytes`, so the byte bound
        /// drops a fraction of the buffer at a time).
        public var segmentBytes = 1 << 20
        public init() {}
    }

    struct Segment {
        var path: String
        var firstSeq: UInt64
        var lastSeq: UInt64
        var bytes: Int
        var newestNs: Int64
    }

    public let directory: String
    private let limits: Limits
    private let segmentBytes: Int
    private let now: () -> Int64
    private let encoder = MessageEncoder()
    private var segments: [Segment] = []
    private var writeFD: Int32 = -1
    private var lockFD: Int32 = -1
    private var acked: UInt64 = 0
    public private(set) var dropped: UInt64 = 0
    public private(set) var numbered = false
    public private(set) var lastSeq: UInt64 = 0
    /// Next record to send: a segment index and a byte offset in it.
    private var cursor = (segment: 0, offset: 0)
    private var stateDirty = false
    private var unsynced = false
    /// The size at which the segment being written rolls (`roll` lowers it on a filling disk).
    private var rollAt: Int
    /// Samples whose record could not be written (disk full): counted in `dropped` too.
    public private(set) var writeFailures: UInt64 = 0

    private var logDir: String { directory + "/log" }

    /// Opens (creating) the buffer in `directory` and recovers what a previous run left.
    /// - Throws: when the directory cannot be created, read or locked (another agent uses it).
    public init(directory: String, limits: Limits = Limits(), now: @escaping () -> Int64 = Clock.unixNanos) throws(SyscallError) {
        self.directory = directory
        self.limits = limits
        self.segmentBytes = max(4096, min(limits.segmentBytes, limits.maxBytes / 4))
        self.rollAt = segmentBytes
        self.now = now
        try Self.makeDirectory(directory)
        lockFD = try syscallChecked("open(\(directory)/lock)") { open(directory + "/lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o600) }
        guard flock(lockFD, LOCK_EX | LOCK_NB) == 0 else {
            let error = SyscallError(call: "flock(\(directory)/lock): the buffer directory is used by another agent", errno: errno)
            close(lockFD)
            throw error
        }
        try finishInterruptedRenumber()
        try Self.makeDirectory(logDir)
        readState()
        try load()
    }

    deinit {
        sync()
        if writeFD >= 0 { close(writeFD) }
        if lockFD >= 0 { close(lockFD) }
    }

    // MARK: - SampleQueue

    public var count: Int {
        segments.reduce(0) { total, s in total + (s.lastSeq > acked ? Int(s.lastSeq - max(s.firstSeq - 1, acked)) : 0) }
    }

    public func append(_ sample: Sample) {
        let record = SampleRecord.encode(sample, encoder: encoder)
        var freed = 0
        while true {
            if segments.isEmpty || segments[segments.count - 1].bytes >= rollAt || writeFD < 0 {
                roll(firstSeq: sample.seq)
            }
            let failure: SyscallError
            if writeFD >= 0, let last = segments.indices.last {
                guard let error = Files.writeAll(writeFD, record, name: segments[last].path) else { break }
                failure = error
                // A partial record would hide every later one: cut back to the last whole record.
                _ = ftruncate(writeFD, off_t(segments[last].bytes))
            } else {
                failure = SyscallError(call: "open(\(logDir)/segment-…)", errno: errno)
            }
            // The filesystem filled up before the byte bound: the oldest samples make room
            // for the newest, as the bounds would (never the segment being written).
            if failure.errno == ENOSPC || failure.errno == EDQUOT, segments.count > 1, freed < 4 {
                dropOldestSegment(reason: "the buffer's filesystem is full")
                freed += 1
                continue
            }
            return failedWrite(failure)
        }
        let last = segments.count - 1
        if segments[last].bytes == 0 { segments[last].firstSeq = sample.seq }
        segments[last].lastSeq = sample.seq
        segments[last].bytes += record.count
        segments[last].newestNs = max(segments[last].newestNs, sample.timestampNs)
        lastSeq = max(lastSeq, sample.seq)
        unsynced = true
        enforceBounds()
    }

    public func acknowledge(_ durableSeq: UInt64) {
        guard durableSeq > acked else { return }
        acked = durableSeq
        stateDirty = true
        while segments.count > 1 && segments[0].lastSeq <= acked { removeFirstSegment() }
    }

    public func takeUnsent(max: Int) -> [Sample] {
        var out: [Sample] = []
        while out.count < max && cursor.segment < segments.count {
            let segment = segments[cursor.segment]
            guard cursor.offset < segment.bytes else {
                guard cursor.segment + 1 < segments.count else { break }
                cursor = (cursor.segment + 1, 0)
                continue
            }
            guard let bytes = try? Files.read(segment.path, from: cursor.offset, maxBytes: segment.bytes - cursor.offset) else {
                Log.error("buffer_read_failed", ["segment": segment.path, "note": "skipping the rest of it"])
                cursor.offset = segment.bytes
                continue
            }
            var offset = 0
            bytes.withUnsafeBytes { raw in
                while out.count < max {
                    guard case .record(let sample, let size) = SampleRecord.decode(UnsafeRawBufferPointer(rebasing: raw[offset...])) else {
                        if offset < raw.count { offset = raw.count }  // checked on open; damage since is skipped
                        return
                    }
                    offset += size
                    if sample.seq > acked { out.append(sample) }
                }
            }
            cursor.offset += offset
        }
        return out
    }

    public func resendAll() { cursor = (0, 0) }

    public func renumber(after durableSeq: UInt64) -> UInt64? {
        let held = count
        guard durableSeq < SampleBuffer.maxSeq - UInt64(held) - 1 else { return nil }
        let firstHeld = segments.first.map { max($0.firstSeq, acked + 1) } ?? 0
        if held > 0 && firstHeld <= durableSeq {
            // Held samples at or below the server's seq would be taken for resends: rewrite them
            // above it (a fresh buffer meeting a node the server knows; usually a sample or two).
            do {
                try rewrite(after: durableSeq)
                return lastSeq
            } catch {
                Self.removeTree(directory + "/log.new")
                // A copy needs room the disk may not have; connecting matters more. What the
                // server takes for resends is acknowledged and not stored: said, with the count.
                Log.error("buffer_renumber_failed", ["error": error, "held": held, "server_seq": durableSeq,
                                                     "note": "held samples numbered at or below the server's seq are lost"])
            }
        }
        // Everything held is above the server's numbering already: nothing to rewrite.
        numbered = true
        lastSeq = max(lastSeq, durableSeq)
        do { try Files.writeAtomically(logDir + "/numbered", []) } catch {
            Log.warning("buffer_state_write_failed", ["error": error, "note": "numbered again after a restart"])
        }
        return lastSeq
    }

    public func sync() {
        if unsynced && writeFD >= 0 {
            _ = fdatasync(writeFD)
            unsynced = false
        }
        if stateDirty {
            stateDirty = false
            let text = "acked=\(acked)\ndropped=\(dropped)\n"
            do { try Files.writeAtomically(directory + "/state", Array(text.utf8), sync: false) } catch {
                Log.warning("buffer_state_write_failed", ["error": error])
            }
        }
    }

    // MARK: - Segments

    private func segmentPath(_ firstSeq: UInt64, in dir: String) -> String {
        let digits = String(firstSeq)
        return dir + "/segment-" + String(repeating: "0", count: max(0, 20 - digits.count)) + digits + ".log"
    }

    private func roll(firstSeq: UInt64) {
        if let last = segments.last, last.bytes == 0, writeFD >= 0 { return }  // still empty: keep writing it
        // On a filling filesystem segments shrink (to a sixteenth of the free space, at least
        // 16 KiB), so that dropping the oldest one frees room before the disk is full.
        var info = statvfs()
        if statvfs(logDir, &info) == 0 {
            let free = Int(clamping: UInt64(info.f_bavail) &* UInt64(info.f_frsize))
            rollAt = min(segmentBytes, max(16 * 1024, free / 16))
        }
        if writeFD >= 0 {
            _ = fdatasync(writeFD)
            close(writeFD)
            writeFD = -1
        }
        if let last = segments.last, last.bytes == 0 {
            // Reuse an empty tail segment (a failed write left it).
            writeFD = open(last.path, O_WRONLY | O_APPEND | O_CLOEXEC)
            return
        }
        let path = segmentPath(firstSeq, in: logDir)
        writeFD = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0o600)
        guard writeFD >= 0 else { return }  // errno tells append why
        segments.append(Segment(path: path, firstSeq: firstSeq, lastSeq: firstSeq - 1, bytes: 0, newestNs: .min))
    }

    private func failedWrite(_ error: SyscallError) {
        writeFailures += 1
        dropped += 1
        stateDirty = true
        if writeFailures == 1 || writeFailures % 1000 == 0 {
            Log.error("buffer_write_failed", ["dir": directory, "error": error, "samples_lost": writeFailures])
        }
    }

    private func enforceBounds() {
        let oldest = now() - limits.maxAgeNs
        while segments.count > 1 {
            if segments[0].newestNs < oldest {
                dropOldestSegment(reason: "older than the buffer's max age")
            } else if segments.reduce(0, { $0 + $1.bytes }) > limits.maxBytes {
                dropOldestSegment(reason: "buffer full")
            } else {
                break
            }
        }
    }

    /// Deletes the oldest segment, counting (and logging) its unacknowledged samples as dropped.
    private func dropOldestSegment(reason: String) {
        let first = segments[0]
        let lost = first.lastSeq > acked ? first.lastSeq - max(first.firstSeq - 1, acked) : 0
        dropped += lost
        stateDirty = true
        if lost > 0 {
            Log.warning("buffer_dropped", ["samples": lost, "first_seq": max(first.firstSeq, acked + 1), "last_seq": first.lastSeq,
                                           "dropped_total": dropped, "reason": reason])
        }
        removeFirstSegment()
    }

    private func removeFirstSegment() {
        unlink(segments[0].path)
        segments.removeFirst()
        cursor = cursor.segment == 0 ? (0, 0) : (cursor.segment - 1, cursor.offset)
    }

    // MARK: - Recovery

    private func readState() {
        guard let text = try? Files.readText(directory + "/state") else { return }
        for line in text.split(separator: "\n") {
            let kv = line.split(separator: "=", maxSplits: 1)
            guard kv.count == 2, let value = UInt64(kv[1]) else { continue }
            if kv[0] == "acked" { acked = value }
            if kv[0] == "dropped" { dropped = value }
        }
    }

    /// Indexes every segment, cutting torn or corrupt tails, and opens the last for appends.
    private func load() throws(SyscallError) {
        if writeFD >= 0 { close(writeFD); writeFD = -1 }
        segments = []
        cursor = (0, 0)
        numbered = access(logDir + "/numbered", F_OK) == 0
        for name in try Files.list(logDir) where name.hasPrefix("segment-") && name.hasSuffix(".log") {
            let path = logDir + "/" + name
            let bytes = try Files.read(path)
            var segment = Segment(path: path, firstSeq: 0, lastSeq: 0, bytes: 0, newestNs: .min)
            var problem: String?
            bytes.withUnsafeBytes { raw in
                while segment.bytes < raw.count {
                    switch SampleRecord.decode(UnsafeRawBufferPointer(rebasing: raw[segment.bytes...])) {
                    case .record(let sample, let size):
                        if segment.bytes == 0 { segment.firstSeq = sample.seq }
                        segment.lastSeq = sample.seq
                        segment.newestNs = max(segment.newestNs, sample.timestampNs)
                        segment.bytes += size
                    case .incomplete: problem = "torn record at the end"; return
                    case .corrupt(let why): problem = why; return
                    }
                }
            }
            if let problem {
                Log.warning("buffer_recovered", ["segment": path, "problem": problem, "kept_bytes": segment.bytes,
                                                 "cut_bytes": bytes.count - segment.bytes])
                _ = truncate(path, off_t(segment.bytes))
            }
            if segment.bytes == 0 { unlink(path); continue }
            lastSeq = max(lastSeq, segment.lastSeq)
            segments.append(segment)
        }
        lastSeq = max(lastSeq, acked)
        while segments.count > 1 && segments[0].lastSeq <= acked { removeFirstSegment() }
        if let last = segments.last { writeFD = open(last.path, O_WRONLY | O_APPEND | O_CLOEXEC) }
        if count > 0 { Log.info("buffer_loaded", ["dir": directory, "samples": count, "first_seq": acked + 1, "last_seq": lastSeq]) }
    }

    /// Writes the held samples renumbered after `durableSeq` into `log.new`, marked numbered,
    /// then swaps it for `log` (two renames; `finishInterruptedRenumber` completes or undoes a
    /// swap a crash interrupted).
    private func rewrite(after durableSeq: UInt64) throws(SyscallError) {
        let newDir = directory + "/log.new"
        Self.removeTree(newDir)
        try Self.makeDirectory(newDir)
        var seq = durableSeq
        var fd: Int32 = -1
        var written = 0
        resendAll()
        while true {
            let batch = takeUnsent(max: 512)
            if batch.isEmpty { break }
            for var sample in batch {
                seq += 1
                sample.seq = seq
                if fd < 0 || written >= segmentBytes {
                    if fd >= 0 { _ = fdatasync(fd); close(fd) }
                    fd = try syscallChecked("open") { open(segmentPath(seq, in: newDir), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600) }
                    written = 0
                }
                let record = SampleRecord.encode(sample, encoder: encoder)
                if let error = Files.writeAll(fd, record, name: newDir) { close(fd); throw error }
                written += record.count
            }
        }
        if fd >= 0 { _ = fdatasync(fd); close(fd) }
        try Files.writeAtomically(newDir + "/numbered", [])
        let oldDir = directory + "/log.old"
        try syscallChecked("rename(log, log.old)") { rename(logDir, oldDir) }
        try syscallChecked("rename(log.new, log)") { rename(newDir, logDir) }
        Self.removeTree(oldDir)
        acked = durableSeq
        stateDirty = true
        try load()
        lastSeq = max(lastSeq, durableSeq)
        sync()
    }

    private func finishInterruptedRenumber() throws(SyscallError) {
        let newDir = directory + "/log.new"
        let oldDir = directory + "/log.old"
        if access(newDir, F_OK) == 0 {
            if access(logDir, F_OK) == 0 {
                Self.removeTree(newDir)  // the swap never started: the old log stands
            } else {
                try syscallChecked("rename(log.new, log)") { rename(newDir, logDir) }
            }
        }
        Self.removeTree(oldDir)
    }

    // MARK: - Files

    static func makeDirectory(_ path: String) throws(SyscallError) {
        if mkdir(path, 0o700) != 0 && errno != EEXIST { throw SyscallError(call: "mkdir(\(path))", errno: errno) }
    }

    static func removeTree(_ path: String) {
        guard let names = try? Files.list(path) else { return }
        for name in names { unlink(path + "/" + name) }
        rmdir(path)
    }
}
