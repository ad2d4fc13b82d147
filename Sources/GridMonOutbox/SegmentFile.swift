import Glibc
import GridMonPosix

/// A segment file written in order, with the calls the outbox needs, each through the one
/// syscall wrapper (EINTR retried, errors carry errno and the call). Owns its descriptor.
///
/// Preallocation: records are written over zeros laid down ahead of them, `preallocateBytes`
/// at a time, so most commits' `fdatasync` flushes data only. An append that grows the file
/// changes its size, and the fdatasync must then write the inode too — on ext4 with a
/// journal, a journal commit: 0.53–0.60 ms against 0.19–0.24 ms over written zeros for a
/// 1 KB record (issue #17; PostgreSQL zero-fills its WAL segments for the same reason).
/// Zeros, not `fallocate`: ext4 and XFS mark fallocated space unwritten, and the first
/// write into it is a metadata change again. The zeros past `size` end the log for
/// `OutboxSegment.scan`; `seal()` and `deinit` cut them off, so a closed segment is exact.
///
/// The zeros are written to disk too, once, by the first fdatasync after them (1.2–1.6 ms
/// for 1 MiB here, 7–18 ms for 4 MiB): `prepareAhead()`, called between commits, lays the
/// next ones down while a step is still free and starts their writeback at once, so no
/// commit that acks are waiting for carries them. An append that outruns them grows the
/// file as before. When the disk has no room for zeros, records are written without them.
///
/// Torn writes: `size` is the length known good (everything up to it was written whole and,
/// after `sync()`, is durable). A write or fdatasync that fails leaves the file cut back to
/// the last synced length before the error is thrown, and every later append first makes
/// sure of it: a record that a full disk tore is never followed by good records, which
/// recovery would then have to quarantine (issue #10, defect 4).
final class SegmentFile {
    let path: String
    private(set) var fd: Int32
    /// Bytes written whole (synced or not).
    private(set) var size: Int
    /// Bytes made durable by the last successful `sync()` (or found at open).
    private(set) var syncedSize: Int
    /// The file's length: `size` plus the zeros laid down ahead of it.
    private var allocated: Int
    /// How far ahead zeros are laid down (0: never).
    private let preallocateBytes: Int
    /// Laying zeros down failed (a full disk): this segment's records are written without
    /// them from then on, rather than fill the disk to its last byte again at every commit.
    private var zerosFailed = false
    /// The file may hold bytes past `syncedSize` from a failed write: cut before appending.
    private var needsTruncate = false

    /// Opens (creating if needed, mode 0600: telemetry is not for other users) `path` and
    /// appends at its end. `preallocateBytes`: see the type's comment.
    init(path: String, preallocateBytes: Int = 0) throws(SyscallError) {
        self.path = path
        self.preallocateBytes = preallocateBytes
        fd = try syscallChecked("open(\(path))") { open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600) }
        var info = stat()
        if fstat(fd, &info) != 0 {
            let error = SyscallError(call: "fstat(\(path))", errno: errno)
            close(fd)
            throw error
        }
        size = Int(info.st_size)
        syncedSize = size
        allocated = size
    }

    /// Cuts the zeros off (what follows `size` was never acknowledged), then closes.
    deinit {
        if allocated > size { _ = ftruncate(fd, off_t(size)) }
        close(fd)
    }

    /// Appends `bytes` whole, or throws with the file cut back to its last synced length.
    func append(_ bytes: [UInt8]) throws(SyscallError) {
        if needsTruncate { try cutBack() }
        if let error = bytes.withUnsafeBytes({ write($0, at: size, call: "write") }) {
            needsTruncate = true
            try? cutBack()
            throw error
        }
        size += bytes.count
        allocated = max(allocated, size)
    }

    /// Between commits: when less than a step of zeros is left past the records, lays down
    /// another and starts writing it back (without waiting), so that the next commits'
    /// fdatasyncs find it on disk or in flight rather than write it themselves.
    func prepareAhead() {
        guard preallocateBytes > 0, !zerosFailed, !needsTruncate, allocated - size < preallocateBytes else { return }
        let from = allocated
        if layZeros(to: allocated + preallocateBytes) { Files.startWriteback(fd, offset: from, length: allocated - from) }
    }

    /// Lays zeros from `allocated` to `target`. Best effort: on failure (a full disk) the
    /// partial zeros are cut off and this segment's records are written without them.
    /// Whether it did.
    private func layZeros(to target: Int) -> Bool {
        let zeros = [UInt8](repeating: 0, count: min(target - allocated, 1 << 20))
        var at = allocated
        while at < target {
            let count = min(zeros.count, target - at)
            if zeros.withUnsafeBytes({ write(UnsafeRawBufferPointer(rebasing: $0[0..<count]), at: at, call: "write zeros") }) != nil {
                _ = ftruncate(fd, off_t(allocated))
                zerosFailed = true
                return false
            }
            at += count
        }
        allocated = target
        return true
    }

    /// pwrite of all of `bytes` at `offset`; the error, if one stopped it.
    private func write(_ bytes: UnsafeRawBufferPointer, at offset: Int, call: String) -> SyscallError? {
        var done = 0
        while done < bytes.count {
            let written = pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done))
            if written < 0 {
                if errno == EINTR { continue }
                return SyscallError(call: "\(call)(\(path))", errno: errno)
            }
            done += written
        }
        return nil
    }

    /// fdatasync: the appended bytes (and the size) are on disk when it returns. On failure
    /// the unsynced bytes are cut off: after a failed fsync Linux may have dropped them from
    /// the page cache, so they are written again rather than trusted.
    func sync() throws(SyscallError) {
        do {
            try syscallChecked("fdatasync(\(path))") { fdatasync(fd) }
            syncedSize = size
        } catch {
            needsTruncate = true
            try? cutBack()
            throw error
        }
    }

    /// Cuts the zeros off a segment no record will join, so a closed segment on disk is
    /// exactly its records (and its size on disk what it holds). Not synced: zeros a crash
    /// brings back are cut again at the next start.
    func seal() throws(SyscallError) {
        guard allocated > size else { return }
        try syscallChecked("ftruncate(\(path))") { ftruncate(fd, off_t(size)) }
        allocated = size
    }

    /// Truncates the file to `syncedSize` (shrinking needs no free space).
    private func cutBack() throws(SyscallError) {
        try syscallChecked("ftruncate(\(path))") { ftruncate(fd, off_t(syncedSize)) }
        size = syncedSize
        allocated = syncedSize
        needsTruncate = false
    }

    static func truncate(_ path: String, to length: Int) throws(SyscallError) {
        try syscallChecked("truncate(\(path))") { Glibc.truncate(path, off_t(length)) }
    }

    /// fdatasync of the file at `path` (recovery: what a crash left in the page cache is made
    /// durable before it is announced as durable).
    static func sync(_ path: String) throws(SyscallError) {
        let fd = try syscallChecked("open(\(path))") { open(path, O_WRONLY | O_CLOEXEC) }
        defer { close(fd) }
        try syscallChecked("fdatasync(\(path))") { fdatasync(fd) }
    }

    /// fsync of a directory, so a created, renamed or removed entry is durable too.
    static func syncDirectory(_ path: String) throws(SyscallError) {
        let fd = try syscallChecked("open(\(path))") { open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        defer { close(fd) }
        try syscallChecked("fsync(\(path))") { fsync(fd) }
    }
}
