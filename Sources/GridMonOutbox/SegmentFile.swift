import Glibc
import GridMonPosix

/// An append-only file descriptor with the calls the outbox needs, each through the one
/// syscall wrapper (EINTR retried, errors carry errno and the call). Owns its descriptor.
final class SegmentFile {
    let path: String
    private(set) var fd: Int32
    private(set) var size: Int

    /// Opens (creating if needed) `path` for appending.
    init(path: String) throws(SyscallError) {
        self.path = path
        fd = try syscallChecked("open(\(path))") { open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644) }
        var info = stat()
        if fstat(fd, &info) != 0 {
            let error = SyscallError(call: "fstat(\(path))", errno: errno)
            close(fd)
            throw error
        }
        size = Int(info.st_size)
    }

    deinit { close(fd) }

    func append(_ bytes: [UInt8]) throws(SyscallError) {
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { raw in Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset) }
            if written < 0 {
                if errno == EINTR { continue }
                throw SyscallError(call: "write(\(path))", errno: errno)
            }
            offset += written
        }
        size += bytes.count
    }

    /// fdatasync: the appended bytes (and the size) are on disk when it returns.
    func sync() throws(SyscallError) {
        try syscallChecked("fdatasync(\(path))") { fdatasync(fd) }
    }

    /// Up to `maxBytes` of the file at `path`, from byte `offset` (fewer at its end).
    static func read(_ path: String, from offset: Int, maxBytes: Int) throws(SyscallError) -> [UInt8] {
        let fd = try syscallChecked("open(\(path))") { open(path, O_RDONLY | O_CLOEXEC) }
        defer { close(fd) }
        var out = [UInt8](repeating: 0, count: maxBytes)
        var filled = 0
        while filled < maxBytes {
            let n = out.withUnsafeMutableBytes { raw in pread(fd, raw.baseAddress! + filled, maxBytes - filled, off_t(offset + filled)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw SyscallError(call: "pread(\(path))", errno: errno)
            }
            if n == 0 { break }
            filled += n
        }
        out.removeLast(maxBytes - filled)
        return out
    }

    static func truncate(_ path: String, to length: Int) throws(SyscallError) {
        try syscallChecked("truncate(\(path))") { Glibc.truncate(path, off_t(length)) }
    }

    /// fsync of a directory, so a created, renamed or removed entry is durable too.
    static func syncDirectory(_ path: String) throws(SyscallError) {
        let fd = try syscallChecked("open(\(path))") { open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        defer { close(fd) }
        try syscallChecked("fsync(\(path))") { fsync(fd) }
    }
}
