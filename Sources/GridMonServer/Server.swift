import CGridMonPosix
import Glibc
import GridMonPosix
import GridMonWire

/// Settings of a `Server`, from the command line or environment.
public struct ServerConfig: Sendable {
    public var listen = SocketAddress(host: "127.0.0.1", port: 7070)
    /// The admin HTTP port (/metrics, /healthz, /readyz, /api/v1/nodes); nil = off.
    public var adminListen: SocketAddress? = SocketAddress(host: "127.0.0.1", port: 7071)
    /// Most admin HTTP connections open at once; more are closed at accept.
    public var maxAdminConnections = 64
    public var session = SessionConfig()
    public var maxConnections = 16_384
    public var handshakeTimeoutMs: UInt64 = 10_000
    /// Output bytes queued per connection before it stops being read (backpressure).
    public var maxOutputBytes = 1 << 20
    /// How long a shutdown waits for connections to drain before closing them.
    public var shutdownGraceMs: UInt64 = 5_000
    public init() {}
}

/// The GridMon stream server on one epoll reactor: accepts agents, runs their sessions,
/// enforces the handshake timeout and keepalive, and shuts down cleanly on SIGINT/SIGTERM.
///
/// Threading: `run()` owns the calling thread until shutdown; everything else happens on it.
public final class Server: EventHandler {
    let config: ServerConfig
    let reactor: Reactor
    let stats = ServerStats()
    let nodes = NodeTable()
    let encoder = MessageEncoder()
    let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 16)
    var maxOutputBytes: Int { config.maxOutputBytes }
    public private(set) var authenticator: Authenticator
    private let scorer: Scorer
    private let sink: SampleSink
    private var listener: Int32 = -1
    fileprivate var signalFD: Int32 = -1
    private var connections: [Int32: ServerConnection] = [:]
    private var adminListener: Int32 = -1
    private var adminConnections: [Int32: AdminConnection] = [:]
    private var nextConnectionID: UInt64 = 1
    private var shuttingDown = false
    /// Re-reads the tokens file on SIGHUP; nil when auth is off.
    public var reloadTokens: (() throws -> Authenticator)?

    public init(config: ServerConfig, authenticator: Authenticator, scorer: Scorer, sink: SampleSink) throws(SyscallError) {
        self.config = config
        self.authenticator = authenticator
        self.scorer = scorer
        self.sink = sink
        self.reactor = try Reactor()
    }

    deinit { readBuffer.deallocate() }

    /// The address actually bound (the port the kernel chose when 0 was asked).
    public private(set) var boundAddress: SocketAddress?

    /// Binds, then serves until SIGINT/SIGTERM, then drains. Returns after a clean shutdown.
    public func run() throws(SyscallError) {
        listener = try Socket.listen(config.listen)
        boundAddress = try Socket.localAddress(listener)
        try reactor.register(listener, events: .readable, handler: self)
        if let adminAddress = config.adminListen {
            adminListener = try Socket.listen(adminAddress, backlog: 128)
            try reactor.register(adminListener, events: .readable, handler: AdminAcceptor(server: self))
            Log.info("admin_listening", ["address": try Socket.localAddress(adminListener)])
        }
        try installSignals()
        Log.info("listening", ["address": boundAddress!, "max_connections": config.maxConnections,
                               "auth": authenticator.insecure ? "OFF (--insecure-no-auth)" : "\(authenticator.tokenCount) tokens"])
        if authenticator.insecure {
            Log.warning("insecure_no_auth", ["note": "every Hello is accepted without a token; for demos only"])
        }
        scheduleSweep()
        try reactor.run()
        Log.info("stopped", ["samples": stats.samplesAccepted, "connections": stats.connectionsAccepted])
    }

    public func handleEvents(_ events: IOEvents) {
        acceptPending()
    }

    func connectionClosed(_ connection: ServerConnection) {
        reactor.unregister(connection.fd)
        connections[connection.fd] = nil
        stats.connectionsClosed += 1
        if shuttingDown && connections.isEmpty { reactor.handle.stop() }
    }

    /// Prometheus text of the server's counters.
    public func metricsText() -> String {
        stats.prometheus(openConnections: connections.count, nodes: nodes.count)
    }

    // MARK: - Accepting

    private func acceptPending() {
        while !shuttingDown {
            let accepted: IOResult<(fd: Int32, peer: SocketAddress)>
            do { accepted = try Socket.accept(listener) } catch {
                // EMFILE and friends: log and retry on the next readiness (level-triggered).
                Log.warning("accept_failed", ["error": error])
                return
            }
            guard case .done(let (fd, peer)) = accepted else { return }
            stats.connectionsAccepted += 1
            guard connections.count < config.maxConnections else {
                stats.connectionsRejected += 1
                stats.violations["max_connections", default: 0] += 1
                Log.warning("connection_refused", ["peer": peer, "reason": "max_connections", "limit": config.maxConnections])
                Socket.close(fd)
                continue
            }
            try? Socket.setNoDelay(fd)
            let session = ServerSession(
                connectionID: nextConnectionID, config: config.session, nodes: nodes, authenticator: authenticator,
                scorer: scorer, sink: sink, stats: stats)
            nextConnectionID += 1
            let connection = ServerConnection(fd: fd, peer: peer, server: self, session: session,
                                              maxFrameBytes: config.session.maxFrameBytes)
            do {
                try reactor.register(fd, events: .readable, handler: connection)
            } catch {
                Log.warning("register_failed", ["error": error])
                Socket.close(fd)
                continue
            }
            connections[fd] = connection
            connection.sendOutgoing()  // the server's preface
        }
    }

    // MARK: - Admin port

    fileprivate func acceptAdmin() {
        while case .done(let (fd, _))? = try? Socket.accept(adminListener) {
            guard adminConnections.count < config.maxAdminConnections else {
                stats.violations["max_admin_connections", default: 0] += 1
                Socket.close(fd)
                continue
            }
            let connection = AdminConnection(fd: fd, server: self)
            guard (try? reactor.register(fd, events: .readable, handler: connection)) != nil else {
                Socket.close(fd)
                continue
            }
            adminConnections[fd] = connection
        }
    }

    func adminResponse(to request: HTTPRequestParser.Request) -> [UInt8] {
        AdminRoutes.respond(to: request, metrics: metricsText, ready: sink.isReady && !shuttingDown, nodes: { nodes.all })
    }

    func adminClosed(_ connection: AdminConnection) {
        reactor.unregister(connection.fd)
        adminConnections[connection.fd] = nil
    }

    // MARK: - Timeouts

    /// Every 250 ms: close connections that sent no Hello in time, ping idle ones, and close
    /// those that stayed silent for two keepalive intervals.
    private func scheduleSweep() {
        reactor.schedule(afterNanos: 250_000_000) { [weak self] in
            guard let self else { return }
            self.sweep(now: Clock.monotonicNanos())
            self.scheduleSweep()
        }
    }

    private func sweep(now: UInt64) {
        for admin in Array(adminConnections.values) where now - admin.openedAtNs > AdminConnection.timeoutNs {
            admin.close()
        }
        let handshakeNs = config.handshakeTimeoutMs * 1_000_000
        let keepaliveNs = UInt64(config.session.keepaliveIntervalMs) * 1_000_000
        for connection in Array(connections.values) where !connection.isClosed {
            let session = connection.session
            if !session.hasOpenedStream && now - connection.acceptedAtNs > handshakeNs {
                session.fail(.deadlineExceeded, "no Hello within \(config.handshakeTimeoutMs) ms", reason: "handshake_timeout")
                connection.sendOutgoing()
                if !connection.isClosed && connection.pendingOutput > 0 { connection.close() }
            } else if keepaliveNs > 0 {
                let idle = now - connection.lastInputNs
                if idle > 2 * keepaliveNs {
                    stats.violations["keepalive_timeout", default: 0] += 1
                    connection.close()
                } else if idle > keepaliveNs && connection.pingSentNs < connection.lastInputNs {
                    connection.pingSentNs = now
                    session.ping(nonce: now)
                    connection.sendOutgoing()
                }
            }
        }
    }

    // MARK: - Signals and shutdown

    private func installSignals() throws(SyscallError) {
        var mask = sigset_t()
        sigemptyset(&mask)
        for signal in [SIGINT, SIGTERM, SIGHUP] { sigaddset(&mask, signal) }
        pthread_sigmask(SIG_BLOCK, &mask, nil)
        signalFD = try syscallChecked("signalfd") { signalfd(-1, &mask, Int32(SFD_NONBLOCK | SFD_CLOEXEC)) }
        try reactor.register(signalFD, events: .readable, handler: SignalHandler(server: self))
    }

    fileprivate func handleSignal(_ signal: Int32) {
        switch signal {
        case SIGHUP:
            guard let reloadTokens else { return Log.info("sighup_ignored", ["reason": "no tokens file"]) }
            do {
                authenticator = try reloadTokens()
                Log.info("tokens_reloaded", ["tokens": authenticator.tokenCount])
            } catch {
                Log.error("tokens_reload_failed", ["error": error, "kept": authenticator.tokenCount])
            }
        default:
            beginShutdown(signal == SIGINT ? "SIGINT" : "SIGTERM")
        }
    }

    /// Stops accepting, says Goodbye to every connection, and stops the reactor once all are
    /// drained or the grace period ends.
    public func beginShutdown(_ why: String) {
        guard !shuttingDown else { return }
        shuttingDown = true
        Log.info("shutting_down", ["signal": why, "connections": connections.count])
        reactor.unregister(listener)
        Socket.close(listener)
        if adminListener >= 0 {
            reactor.unregister(adminListener)
            Socket.close(adminListener)
            for admin in Array(adminConnections.values) { admin.close() }
        }
        for connection in Array(connections.values) {
            connection.session.sayGoodbye("server shutting down")
            connection.sendOutgoing()
        }
        if connections.isEmpty { return reactor.handle.stop() }
        reactor.schedule(afterNanos: config.shutdownGraceMs * 1_000_000) { [weak self] in
            guard let self else { return }
            for connection in Array(self.connections.values) { connection.close() }
            self.reactor.handle.stop()
        }
    }
}

/// Accepts admin HTTP connections.
private final class AdminAcceptor: EventHandler {
    unowned let server: Server
    init(server: Server) { self.server = server }
    func handleEvents(_ events: IOEvents) { server.acceptAdmin() }
}

/// Reads signalfd records and passes the signal numbers to the server.
private final class SignalHandler: EventHandler {
    unowned let server: Server
    init(server: Server) { self.server = server }
    func handleEvents(_ events: IOEvents) {
        var info = signalfd_siginfo()
        while Glibc.read(server.signalFD, &info, MemoryLayout<signalfd_siginfo>.size) == MemoryLayout<signalfd_siginfo>.size {
            server.handleSignal(Int32(info.ssi_signo))
        }
    }
}
