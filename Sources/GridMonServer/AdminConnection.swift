import GridMonPosix
import GridMonTLS

/// One HTTP connection on the admin port: reads a request head, writes the answer, closes.
///
/// Bounded: the head is capped by `HTTPRequestParser`, the answer is written from one buffer,
/// and the server closes admin connections older than `AdminConnection.timeoutNs`.
/// With `--admin-tls` the exchange runs inside TLS (the agent port's certificate): the
/// handshake first, bounded by the same timeout.
/// Threading: confined to its reactor's thread. Ownership: owns `fd` and closes it.
final class AdminConnection: EventHandler {
    static let timeoutNs: UInt64 = 5_000_000_000

    let fd: Int32
    let openedAtNs = Clock.monotonicNanos()
    private unowned let server: Worker
    private var parser = HTTPRequestParser()
    private var response: [UInt8] = []
    private var written = 0
    private(set) var isClosed = false
    private let tls: TLSSession?

    init(fd: Int32, server: Worker, tls: TLSSession? = nil) {
        self.fd = fd
        self.server = server
        self.tls = tls
    }

    func handleEvents(_ events: IOEvents) {
        if let tls, !tls.isEstablished {
            do {
                if let need = try tls.handshake() { return wait(for: need) }
            } catch {
                server.stats.violation("admin_tls_handshake_failed")
                server.shared.limitLog.note("admin_tls_handshake_failed", ["error": error])
                return close()
            }
        }
        if response.isEmpty { read() } else { write() }
    }

    private func wait(for need: TLSSession.Need) {
        try? server.reactor.modify(fd, events: need == .readable ? .readable : .writable)
    }

    private func transportRead(_ buffer: UnsafeMutableRawBufferPointer) throws -> IOResult<Int> {
        guard let tls else { return try Socket.read(fd, into: buffer) }
        switch try tls.read(into: buffer) {
        case .done(let count): return .done(count)
        case .blocked(let need): wait(for: need); return .wouldBlock
        }
    }

    private func transportWrite(_ bytes: UnsafeRawBufferPointer) throws -> IOResult<Int> {
        guard let tls else { return try Socket.write(fd, bytes) }
        switch try tls.write(bytes) {
        case .done(let count): return .done(count)
        case .blocked(let need): wait(for: need); return .wouldBlock
        }
    }

    func close() {
        guard !isClosed else { return }
        isClosed = true
        if let tls, tls.isEstablished { tls.close() }
        server.admin?.connectionClosed(self)
        Socket.close(fd)
    }

    private func read() {
        var buffer = [UInt8](repeating: 0, count: 4096)
        while response.isEmpty {
            let result: IOResult<Int>
            do { result = try buffer.withUnsafeMutableBytes { try transportRead($0) } } catch { return close() }
            guard case .done(let count) = result else { return }
            if count == 0 { return close() }
            do {
                if let request = try buffer.withUnsafeBytes({ try parser.feed(UnsafeRawBufferPointer(rebasing: $0[..<count])) }) {
                    response = server.admin?.response(to: request) ?? httpResponse(status: 503, body: "shutting down\n")
                }
            } catch let failure as HTTPRequestParser.Failure {
                response = httpResponse(status: failure.status, body: failure.reason + "\n")
            } catch {
                return close()
            }
        }
        try? server.reactor.modify(fd, events: .writable)
        write()
    }

    private func write() {
        while written < response.count {
            let result: IOResult<Int>
            do {
                result = try response.withUnsafeBytes { try transportWrite(UnsafeRawBufferPointer(rebasing: $0[written...])) }
            } catch { return close() }
            guard case .done(let count) = result else { return }
            written += count
        }
        close()
    }
}
