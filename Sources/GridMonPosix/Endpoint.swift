import Glibc

/// A server named by host and port, as an operator writes it: `host:port`, `10.0.0.5:7070`
/// or `[2001:db8::1]:7070`. Resolved (DNS, /etc/hosts, IPv4 and IPv6) at every connect, so a
/// moved name is followed without a restart.
public struct Endpoint: Equatable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: UInt16

    public init(host: String, port: UInt16) {
        self.host = host
        self.port = port
    }

    /// Parses `HOST:PORT` or `[IPV6]:PORT`; nil when the port is missing or not 1...65535, or the
    /// host is empty or holds a blank.
    public init?(parsing text: String) {
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            guard !host.contains(":") else { return nil }  // a bare IPv6 address needs brackets
        }
        guard !host.isEmpty, !host.contains(" "), let port = UInt16(portText), port > 0 else { return nil }
        self.init(host: String(host), port: port)
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// The addresses `host` names now, in the resolver's preferred order (getaddrinfo(3)).
    /// Blocks for as long as the resolver takes (its timeout is resolv.conf's).
    /// - Throws: `SyscallError` whose call names the host and the resolver's message.
    public func resolve() throws(SyscallError) -> [ResolvedAddress] {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICSERV
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &list)
        guard status == 0, let list else {
            let message = String(cString: gai_strerror(status))
            throw SyscallError(call: "getaddrinfo(\(host)): \(message)", errno: status == EAI_SYSTEM ? errno : EHOSTUNREACH)
        }
        defer { freeaddrinfo(list) }
        var result: [ResolvedAddress] = []
        var node: UnsafeMutablePointer<addrinfo>? = list
        while let entry = node {
            if let address = entry.pointee.ai_addr, entry.pointee.ai_family == AF_INET || entry.pointee.ai_family == AF_INET6 {
                var storage = sockaddr_storage()
                let length = min(Int(entry.pointee.ai_addrlen), MemoryLayout<sockaddr_storage>.size)
                withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: UnsafeRawBufferPointer(start: address, count: length)) }
                let resolved = ResolvedAddress(storage: storage, length: socklen_t(length))
                if !result.contains(resolved) { result.append(resolved) }
            }
            node = entry.pointee.ai_next
        }
        return result
    }
}

/// One socket address of either family, as the resolver returned it.
public struct ResolvedAddress: Equatable, Sendable, CustomStringConvertible {
    var storage: sockaddr_storage
    var length: socklen_t

    public var family: Int32 { Int32(storage.ss_family) }

    public static func == (a: ResolvedAddress, b: ResolvedAddress) -> Bool {
        a.length == b.length && withUnsafeBytes(of: a.storage) { x in withUnsafeBytes(of: b.storage) { y in
            x.prefix(Int(a.length)).elementsEqual(y.prefix(Int(b.length)))
        } }
    }

    /// Numeric form: `127.0.0.1:7070` or `[::1]:7070`.
    public var description: String {
        var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        var service = [CChar](repeating: 0, count: 32)
        var copy = storage
        let status = withUnsafePointer(to: &copy) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                getnameinfo($0, length, &host, socklen_t(host.count), &service, socklen_t(service.count), NI_NUMERICHOST | NI_NUMERICSERV)
            }
        }
        guard status == 0 else { return "?" }
        let h = String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let s = String(decoding: service.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return family == AF_INET6 ? "[\(h)]:\(s)" : "\(h):\(s)"
    }
}

extension Socket {
    /// Starts a non-blocking connect to `address` (IPv4 or IPv6); completion shows as
    /// writability (check `pendingError`).
    public static func connect(_ address: ResolvedAddress) throws(SyscallError) -> Int32 {
        let fd = try syscallChecked("socket") {
            Glibc.socket(address.family, Int32(SOCK_STREAM.rawValue | SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue), 0)
        }
        var storage = address.storage
        let result = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, address.length) }
        }
        if result < 0 && errno != EINPROGRESS && errno != EINTR {
            let error = SyscallError(call: "connect(\(address))", errno: errno)
            Glibc.close(fd)
            throw error
        }
        return fd
    }
}
