import Glibc
import GridMonPosix

/// An exclusive lock on a data directory, held for the life of the process.
///
/// Two servers writing one outbox would interleave record numbers and delete each other's
/// segments; with SO_REUSEPORT a second server on the same port would even start silently
/// (issue #10). `flock` on `DIR/LOCK` is released by the kernel when the process dies, so a
/// SIGKILLed server never leaves a stale lock behind. The file holds the owner's pid, for the
/// error message of the next one. Ownership: owns its descriptor until `deinit`.
public final class DataDirLock: Sendable {
    public let path: String
    private let fd: Int32

    public struct Held: Error, CustomStringConvertible {
        public let directory: String
        public let ownerPID: String
        public var description: String {
            "\(directory) is in use by another gridmon-stream-server (pid \(ownerPID.isEmpty ? "unknown" : ownerPID)); "
                + "one data directory serves one server"
        }
    }

    /// Takes the lock or throws `Held` (another process has it) or `SyscallError`.
    public init(directory: String) throws {
        let path = directory + "/LOCK"
        self.path = path
        if mkdir(directory, 0o700) != 0 && errno != EEXIST { throw SyscallError(call: "mkdir(\(directory))", errno: errno) }
        let fd = try syscallChecked("open(\(path))") { open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600) }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let code = errno
            let owner = (try? Files.readText(path))?.split(separator: "\n").first.map(String.init) ?? ""
            close(fd)
            if code == EWOULDBLOCK { throw Held(directory: directory, ownerPID: owner) }
            throw SyscallError(call: "flock(\(path))", errno: code)
        }
        let pid = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = pid.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        self.fd = fd
    }

    deinit { close(fd) }
}
