import CGridMonPosix
import Glibc

/// Whole-file reads and atomic writes, the only file I/O the command-line tools need.
public enum Files {
    /// The bytes of the file at `path`.
    /// - Parameter maxBytes: a longer file is refused (EFBIG) before more is read: for files
    ///   another program writes (the agent's textfile directory).
    /// - Throws: `SyscallError` naming the call and the path.
    public static func read(_ path: String, maxBytes: Int = .max) throws(SyscallError) -> [UInt8] {
        let fd = try syscallChecked("open(\(path))") { open(path, O_RDONLY | O_CLOEXEC) }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = chunk.withUnsafeMutableBytes { raw in Glibc.read(fd, raw.baseAddress, raw.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw SyscallError(call: "read(\(path))", errno: errno)
            }
            if count == 0 { return bytes }
            guard bytes.count + count <= maxBytes else { throw SyscallError(call: "read(\(path)): longer than \(maxBytes) bytes", errno: EFBIG) }
            bytes += chunk[..<count]
        }
    }

    /// Up to `maxBytes` of the file at `path`, from byte `offset` (fewer at its end), by pread(2).
    public static func read(_ path: String, from offset: Int, maxBytes: Int) throws(SyscallError) -> [UInt8] {
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

    /// The file at `path` as UTF-8 text (invalid sequences repaired).
    public static func readText(_ path: String, maxBytes: Int = .max) throws(SyscallError) -> String {
        String(decoding: try read(path, maxBytes: maxBytes), as: UTF8.self)
    }

    /// Replaces the file at `path` with `bytes` atomically: written to a temporary file beside
    /// it, fsync'ed (unless `sync` is false: then a crash may leave the old content, never a
    /// torn one), then renamed over it, so a crash leaves the old file or the new one.
    public static func writeAtomically(_ path: String, _ bytes: [UInt8], sync: Bool = true) throws(SyscallError) {
        let temporary = path + ".tmp.\(getpid())"
        let fd = try syscallChecked("open(\(temporary))") { open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644) }
        var failure = writeAll(fd, bytes, name: temporary)
        if sync && failure == nil && fsync(fd) != 0 { failure = SyscallError(call: "fsync(\(temporary))", errno: errno) }
        close(fd)
        if failure == nil && rename(temporary, path) != 0 { failure = SyscallError(call: "rename(\(temporary), \(path))", errno: errno) }
        if let failure {
            unlink(temporary)
            throw failure
        }
    }

    /// Appends `bytes` to the file at `path` (created if missing) with one `O_APPEND` write
    /// loop; not fsync'ed.
    public static func append(_ path: String, _ bytes: [UInt8]) throws(SyscallError) {
        let fd = try syscallChecked("open(\(path))") { open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644) }
        defer { close(fd) }
        if let failure = writeAll(fd, bytes, name: path) { throw failure }
    }

    /// Starts writing `length` bytes of `fd` from `offset` back to disk without waiting
    /// (sync_file_range(2), SYNC_FILE_RANGE_WRITE), so that a later fdatasync finds them
    /// written or in flight. Makes nothing durable; a failure only loses the head start.
    public static func startWriteback(_ fd: Int32, offset: Int, length: Int) {
        _ = gridmon_start_writeback(fd, Int64(offset), Int64(length))
    }

    /// Writes all of `bytes` to `fd`, through short writes and EINTR; the error, if any.
    public static func writeAll(_ fd: Int32, _ bytes: [UInt8], name: String) -> SyscallError? {
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { raw in Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset) }
            if written < 0 {
                if errno != EINTR { return SyscallError(call: "write(\(name))", errno: errno) }
            } else {
                offset += written
            }
        }
        return nil
    }

    /// `path` made absolute with symbolic links resolved (realpath(3)), or `path` itself when
    /// it cannot be (logs name the directory a relative --data-dir really is).
    public static func absolute(_ path: String) -> String {
        guard let resolved = realpath(path, nil) else { return path }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// The names in directory `path` (without "." and ".."), sorted.
    public static func list(_ path: String) throws(SyscallError) -> [String] {
        guard let dir = opendir(path) else { throw SyscallError(call: "opendir(\(path))", errno: errno) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }
}
