import CGridMonPosix
import Glibc

/// An IPv4 address and port, e.g. `127.0.0.1:7070`.
public struct SocketAddress: Equatable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: UInt16

    public init(host: String, port: UInt16) {
        self.host = host
        self.port = port
    }

    /// Parses `HOST:PORT` (IPv4 dotted quad; `localhost` means 127.0.0.1).
    public init?(parsing text: String) {
        guard let colon = text.lastIndex(of: ":"), let port = UInt16(text[text.index(after: colon)...]) else { return nil }
        var host = String(text[..<colon])
        if host == "localhost" { host = "127.0.0.1" }
        if host.isEmpty { host = "0.0.0.0" }
        self.init(host: host, port: port)
        guard (try? self.sockaddr()) != nil else { return nil }
    }

    public var description: String { "\(host):\(port)" }

    func sockaddr() throws(SyscallError) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else { throw SyscallError(call: "inet_pton(\(host))", errno: EINVAL) }
        return address
    }

    init(_ address: sockaddr_in) {
        var address = address
        var buffer = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
        inet_ntop(AF_INET, &address.sin_addr, &buffer, socklen_t(buffer.count))
        self.init(host: String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self),
                  port: UInt16(bigEndian: address.sin_port))
    }
}

/// TCP socket calls on raw descriptors, all non-blocking and close-on-exec.
///
/// The caller owns every descriptor returned and closes it with `Socket.close`. Reads and
/// writes report `.wouldBlock` instead of blocking; writes never raise SIGPIPE.
public enum Socket {
    /// A listening socket bound to `address` (port 0 picks a free port; see `localAddress`).
    /// - Parameters:
    ///   - backlog: pending-connection queue; the kernel caps it at net.core.somaxconn.
    ///   - reusePort: SO_REUSEPORT, so several reactor threads can each own a listener.
    public static func listen(_ address: SocketAddress, backlog: Int32 = 4096, reusePort: Bool = false) throws(SyscallError) -> Int32 {
        let fd = try syscallChecked("socket") { Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue | SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue), 0) }
        do {
            try setOption(fd, SOL_SOCKET, SO_REUSEADDR, 1)
            if reusePort { try setOption(fd, SOL_SOCKET, SO_REUSEPORT, 1) }
            var sin = try address.sockaddr()
            try syscallChecked("bind(\(address))") {
                withUnsafePointer(to: &sin) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
                }
            }
            try syscallChecked("listen") { Glibc.listen(fd, backlog) }
            return fd
        } catch {
            Glibc.close(fd)
            throw error
        }
    }

    /// Whether another socket already listens on `address`: a bind without SO_REUSEPORT fails
    /// with EADDRINUSE. Servers bind with SO_REUSEPORT (one listener per reactor), which would
    /// let a second server share the port silently; they probe first (issue #10).
    public static func isAddressInUse(_ address: SocketAddress) throws(SyscallError) -> Bool {
        guard address.port != 0 else { return false }
        let fd = try syscallChecked("socket") { Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0) }
        defer { Glibc.close(fd) }
        try setOption(fd, SOL_SOCKET, SO_REUSEADDR, 1)
        var sin = try address.sockaddr()
        let result = withUnsafePointer(to: &sin) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if result == 0 { return false }
        if errno == EADDRINUSE { return true }
        throw SyscallError(call: "bind(\(address))", errno: errno)
    }

    /// Accepts one pending connection, non-blocking and close-on-exec.
    public static func accept(_ listener: Int32) throws(SyscallError) -> IOResult<(fd: Int32, peer: SocketAddress)> {
        var sin = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let result = try syscall("accept4") {
            withUnsafeMutablePointer(to: &sin) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    gridmon_accept4(listener, $0, &length, Int32(SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue))
                }
            }
        }
        switch result {
        case .done(let fd): return .done((fd, SocketAddress(sin)))
        case .wouldBlock: return .wouldBlock
        }
    }

    /// Starts a non-blocking connect; completion shows as writability (check `pendingError`).
    /// - Returns: the descriptor, connected or connecting.
    public static func connect(_ address: SocketAddress) throws(SyscallError) -> Int32 {
        let fd = try syscallChecked("socket") { Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue | SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue), 0) }
        var sin: sockaddr_in
        do { sin = try address.sockaddr() } catch { Glibc.close(fd); throw error }
        let result = withUnsafePointer(to: &sin) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if result < 0 && errno != EINPROGRESS && errno != EINTR {
            let error = SyscallError(call: "connect(\(address))", errno: errno)
            Glibc.close(fd)
            throw error
        }
        return fd
    }

    /// The error of a finished non-blocking connect (SO_ERROR), or nil when it succeeded.
    public static func pendingError(_ fd: Int32) -> SyscallError? {
        var value: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        if getsockopt(fd, SOL_SOCKET, SO_ERROR, &value, &length) < 0 { return SyscallError(call: "getsockopt(SO_ERROR)", errno: errno) }
        return value == 0 ? nil : SyscallError(call: "connect", errno: value)
    }

    /// Reads into `buffer`. `.done(0)` means the peer closed its side.
    @inline(__always)
    public static func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) throws(SyscallError) -> IOResult<Int> {
        try syscall("read") { Glibc.read(fd, buffer.baseAddress, buffer.count) }
    }

    /// Writes from `bytes`; may write fewer than all. Never raises SIGPIPE (MSG_NOSIGNAL).
    @inline(__always)
    public static func write(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws(SyscallError) -> IOResult<Int> {
        try syscall("send") { Glibc.send(fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL)) }
    }

    /// Disables Nagle's algorithm, so small frames (acks) leave at once.
    public static func setNoDelay(_ fd: Int32) throws(SyscallError) {
        try setOption(fd, Int32(IPPROTO_TCP), TCP_NODELAY, 1)
    }

    /// The address a socket is bound to (to learn the port the kernel picked for port 0).
    public static func localAddress(_ fd: Int32) throws(SyscallError) -> SocketAddress {
        var sin = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        try syscallChecked("getsockname") {
            withUnsafeMutablePointer(to: &sin) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        }
        return SocketAddress(sin)
    }

    /// Closes a descriptor. A close error is not actionable for sockets, so it is ignored.
    public static func close(_ fd: Int32) {
        _ = Glibc.close(fd)
    }

    static func setOption(_ fd: Int32, _ level: Int32, _ name: Int32, _ value: Int32) throws(SyscallError) {
        var value = value
        try syscallChecked("setsockopt(\(name))") { setsockopt(fd, level, name, &value, socklen_t(MemoryLayout<Int32>.size)) }
    }
}
