import Glibc
import GridMonPosix

/// An append-only file descriptor with the calls the outbox needs, each through the one
/// syscall wrapper (EINTR retried, errors carry errno and the call). Owns its descriptor.
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
    /// The file may hold bytes past `syncedSize` from a failed write: cut before appending.
    private var needsTruncate = false

    /// Opens (creating if needed, mode 0600: telemetry is not for other users) `path` for appending.
    init(path: String) throws(SyscallError) {
        self.path = path
        fd = try syscallChecked("open(\(path))") { open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600) }
        var info = stat()
        if fstat(fd, &info) != 0 {
            let error = SyscallError(call: "fstat(\(path))", errno: errno)
            close(fd)
            throw error
        }
        size = Int(info.st_size)
        syncedSize = size
    }

    deinit { close(fd) }

    /// Appends `bytes` whole, or throws with the file cut back to its last synced length.
    func append(_ bytes: [UInt8]) throws(SyscallError) {
        if needsTruncate { try cutBack() }
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { raw in Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset) }
            if written < 0 {
                if errno == EINTR { continue }
                let error = SyscallError(call: "write(\(path))", errno: errno)
                needsTruncate = true
                try? cutBack()
                throw error
            }
            offset += written
        }
        size += bytes.count
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

    /// Truncates the file to `syncedSize` (shrinking needs no free space).
    private func cutBack() throws(SyscallError) {
        try syscallChecked("ftruncate(\(path))") { ftruncate(fd, off_t(syncedSize)) }
        size = syncedSize
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
