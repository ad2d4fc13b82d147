import CGridMonPosix
import Glibc

/// A numeric socket address and port, IPv4 or IPv6: `127.0.0.1:7070`, `[::1]:7070`.
///
/// Parsed from what an operator writes (`HOST:PORT`, `[IPV6]:PORT`, `:PORT` for every IPv4
/// address); a host name is resolved once, at parse time, to its first IPv4 address, else its
/// first IPv6 one (a listener
/// binds one address; agents that follow moving names use `Endpoint`).
public struct SocketAddress: Equatable, Sendable, CustomStringConvertible {
    /// Numeric host, without brackets.
    public var host: String
    public var port: UInt16

    public init(host: String, port: UInt16) {
        self.host = host
        self.port = port
    }

    /// Parses `HOST:PORT` / `[IPV6]:PORT` / `:PORT`; nil when `parse` finds a problem.
    public init?(parsing text: String) {
        guard case .success(let address) = Self.parse(text) else { return nil }
        self = address
    }

    /// Parses an address, saying what is wrong when it cannot: no port, a port outside
    /// 0...65535, an unbracketed IPv6 address, a host that does not resolve. Blocks for as long
    /// as the resolver takes when the host is a name.
    public static func parse(_ text: String) -> Result<SocketAddress, AddressProblem> {
        var host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return .failure(.init("no ']' after the IPv6 address")) }
            guard text[text.index(after: close)...].hasPrefix(":") else { return .failure(.init("no :PORT after [IPV6]")) }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else { return .failure(.init("no :PORT")) }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            if host.contains(":") { return .failure(.init("an IPv6 address goes in brackets, [::1]:7070")) }
        }
        guard let port = Int(portText) else { return .failure(.init("port '\(portText)' is not a number")) }
        guard (0...65535).contains(port) else { return .failure(.init("port \(port) is not within 0...65535")) }
        if host.isEmpty { host = "0.0.0.0" }
        if host == "localhost" { host = "127.0.0.1" }  // not ::1, which an IPv4 agent would not reach
        let candidate = SocketAddress(host: String(host), port: UInt16(port))
        if (try? candidate.sockaddr()) != nil { return .success(candidate) }
        do {
            // A name with both families binds/connects IPv4 first: what an operator who wrote
            // a name for a dual-stack host most likely reaches from everywhere.
            let addresses = try Endpoint(host: String(host), port: 1).resolve()
            guard let first = addresses.first(where: { $0.family == AF_INET }) ?? addresses.first else {
                return .failure(.init("host '\(host)' has no address"))
            }
            var resolved = SocketAddress(first.storage)
            resolved.port = UInt16(port)
            return .success(resolved)
        } catch {
            return .failure(.init("host '\(host)' does not resolve: \(error)"))
        }
    }

    /// Why an address did not parse.
    public struct AddressProblem: Error, CustomStringConvertible, Equatable {
        public var description: String
        init(_ description: String) { self.description = description }
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    public var family: Int32 { host.contains(":") ? AF_INET6 : AF_INET }

    /// 127.0.0.0/8, ::1 or ::ffff:127.x: this machine only.
    public var isLoopback: Bool { host.hasPrefix("127.") || host == "::1" || host.hasPrefix("::ffff:127.") }

    /// The address as the kernel takes it.
    func sockaddr() throws(SyscallError) -> (storage: sockaddr_storage, length: socklen_t) {
        var storage = sockaddr_storage()
        if host.contains(":") {
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_port = port.bigEndian
            guard inet_pton(AF_INET6, host, &address.sin6_addr) == 1 else { throw SyscallError(call: "inet_pton(\(host))", errno: EINVAL) }
            withUnsafeMutableBytes(of: &storage) { raw in withUnsafeBytes(of: address) { raw.copyMemory(from: $0) } }
            return (storage, socklen_t(MemoryLayout<sockaddr_in6>.size))
        }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else { throw SyscallError(call: "inet_pton(\(host))", errno: EINVAL) }
        withUnsafeMutableBytes(of: &storage) { raw in withUnsafeBytes(of: address) { raw.copyMemory(from: $0) } }
        return (storage, socklen_t(MemoryLayout<sockaddr_in>.size))
    }

    /// The numeric form of an address the kernel returned (accept, getsockname, getaddrinfo).
    init(_ storage: sockaddr_storage) {
        var storage = storage
        if Int32(storage.ss_family) == AF_INET6 {
            var address = withUnsafeBytes(of: &storage) { $0.load(as: sockaddr_in6.self) }
            var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            inet_ntop(AF_INET6, &address.sin6_addr, &buffer, socklen_t(buffer.count))
            self.init(host: String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self),
                      port: UInt16(bigEndian: address.sin6_port))
        } else {
            var address = withUnsafeBytes(of: &storage) { $0.load(as: sockaddr_in.self) }
            var buffer = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
            inet_ntop(AF_INET, &address.sin_addr, &buffer, socklen_t(buffer.count))
            self.init(host: String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self),
                      port: UInt16(bigEndian: address.sin_port))
        }
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
        let fd = try syscallChecked("socket") { Glibc.socket(address.family, Int32(SOCK_STREAM.rawValue | SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue), 0) }
        do {
            try setOption(fd, SOL_SOCKET, SO_REUSEADDR, 1)
            if reusePort { try setOption(fd, SOL_SOCKET, SO_REUSEPORT, 1) }
            var (sin, length) = try address.sockaddr()
            try syscallChecked("bind(\(address))") {
                withUnsafePointer(to: &sin) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, length) }
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
        let fd = try syscallChecked("socket") { Glibc.socket(address.family, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0) }
        defer { Glibc.close(fd) }
        try setOption(fd, SOL_SOCKET, SO_REUSEADDR, 1)
        var (sin, length) = try address.sockaddr()
        let result = withUnsafePointer(to: &sin) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.bind(fd, $0, length) }
        }
        if result == 0 { return false }
        if errno == EADDRINUSE { return true }
        throw SyscallError(call: "bind(\(address))", errno: errno)
    }

    /// Accepts one pending connection, non-blocking and close-on-exec.
    public static func accept(_ listener: Int32) throws(SyscallError) -> IOResult<(fd: Int32, peer: SocketAddress)> {
        var sin = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
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
        let fd = try syscallChecked("socket") { Glibc.socket(address.family, Int32(SOCK_STREAM.rawValue | SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue), 0) }
        var sin: sockaddr_storage
        var length: socklen_t
        do { (sin, length) = try address.sockaddr() } catch { Glibc.close(fd); throw error }
        let result = withUnsafePointer(to: &sin) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, length) }
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
        var sin = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
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
