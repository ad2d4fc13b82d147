import Glibc
import GridMonNotify
import GridMonPosix
import GridMonTLS
import GridMonWire
import Synchronization

/// Work one reactor thread asks of another.
enum WorkerJob: Sendable {
    /// Close `connection`: a newer connection on another thread took `node` over.
    case evict(connection: UInt64, node: String)
    /// Stop accepting, say Goodbye, drain, stop.
    case shutdown(reason: String)
    /// The sink made more samples durable: send the acks that waited for it.
    case sinkDurable
    /// The tokens were reloaded: close streams whose token was revoked.
    case tokensReloaded
}

/// The thread-safe face of a worker: a mailbox and its reactor's wake-up.
final class WorkerMailbox: Sendable {
    private let jobs = Mutex<[WorkerJob]>([])
    let reactor: Reactor.Handle

    init(reactor: Reactor.Handle) { self.reactor = reactor }

    func post(_ job: WorkerJob) {
        jobs.withLock { $0.append(job) }
        reactor.wakeUp()
    }

    func take() -> [WorkerJob] { jobs.withLock { jobs in defer { jobs.removeAll() }; return jobs } }
}

/// One reactor thread of the server: its own listener (SO_REUSEPORT spreads connections
/// across workers), connections, encoder, message decoder, read buffer and counters.
///
/// Node state is shared (`NodeTable`); a worker touches another worker's connections only by
/// posting to its mailbox. Threading: confined to the thread running `run()`, except
/// `mailbox`. Ownership: owns its listener and connection descriptors.
final class Worker: EventHandler {
    let index: Int
    let shared: ServerShared
    /// This worker's own: its timers run on its thread and never outlive it, so they capture
    /// the worker `unowned`. Not `weak`: one weak reference moves an object's reference count
    /// to a side table, and every connection's use of its worker (`unowned`) then took the
    /// slow path, 2 % of the server's CPU at 10,000 idle agents (perf, issue #17).
    let reactor: Reactor
    let mailbox: WorkerMailbox
    let stats: ServerStats
    let encoder = MessageEncoder()
    /// What one frame may decode to scales with the frame cap: 16 × (64 MiB at the default 4 MiB).
    let messageDecoder: MessageDecoder
    let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 16)
    var maxOutputBytes: Int { shared.config.maxOutputBytes }
    /// Set on worker 0 only: the admin port and signals are served there.
    var admin: AdminPort?
    private let scorer: Scorer
    /// Shared by this thread's sessions (see `StoreScratch`).
    private let storeScratch = StoreScratch()
    private var listener: Int32
    private var connections: [Int32: ServerConnection] = [:]
    private var byID: [UInt64: ServerConnection] = [:]
    /// Connections holding acks until the sink makes their samples durable.
    private var awaitingDurable: [Int32: ServerConnection] = [:]
    private var nextConnection: UInt64 = 0
    /// A spare descriptor, given up to accept and close a connection when the process is out of
    /// descriptors (EMFILE): otherwise the level-triggered listener stays readable and the
    /// reactor spins (issue #10, defect 6; the trick libev and nginx use).
    private var reserveFD: Int32 = open("/dev/null", O_RDONLY | O_CLOEXEC)
    private(set) var shuttingDown = false
    /// True while the sink's queue is above its high-water mark: no connection is read.
    private(set) var readingPaused = false

    /// - Parameters: `reactor` and `shared.mailboxes[index]` are this worker's; `listener` is
    ///   its own SO_REUSEPORT socket, which it closes at shutdown.
    init(index: Int, shared: ServerShared, reactor: Reactor, listener: Int32, scorer: Scorer) throws(SyscallError) {
        self.index = index
        self.shared = shared
        self.listener = listener
        self.scorer = scorer
        self.stats = shared.stats[index]
        self.reactor = reactor
        self.mailbox = shared.mailboxes[index]
        self.messageDecoder = MessageDecoder(maxDecodedBytes: 16 * max(shared.config.session.maxFrameBytes, FrameFormat.defaultMaxFrameSize))
        reactor.onWakeUp = { [unowned self] in
            for job in self.mailbox.take() { self.perform(job) }
        }
        try reactor.register(listener, events: .readable, handler: self)
        scheduleSweep()
    }

    deinit {
        readBuffer.deallocate()
        if reserveFD >= 0 { Glibc.close(reserveFD) }
    }

    /// Runs the reactor until this worker has shut down.
    func run() throws(SyscallError) {
        try reactor.run()
    }

    func handleEvents(_ events: IOEvents) {
        acceptPending()
    }

    /// Connections that said their last frame and wait for the peer's FIN (each holds only its
    /// descriptor, for at most two seconds).
    private(set) var lingering = 0
    /// Past this many, a closing connection is closed at once (as before lingering existed),
    /// so a peer that provokes errors in a loop cannot pile up descriptors.
    static let maxLingering = 256

    /// The connection is over for the server's accounting (its slot under --max-connections,
    /// its node streams); its descriptor may linger a little longer (`connectionClosed`).
    func connectionReleased(_ connection: ServerConnection, lingers: Bool) {
        awaitingDurable[connection.fd] = nil
        byID[connection.session.owner.connection] = nil
        stats.connectionsClosed.add()
        if lingers { lingering += 1 }
    }

    /// The descriptor is closed.
    func connectionClosed(_ connection: ServerConnection, lingered: Bool) {
        reactor.unregister(connection.fd)
        connections[connection.fd] = nil
        if lingered { lingering -= 1 }
        if shuttingDown && connections.isEmpty { finishShutdown() }
    }

    private func perform(_ job: WorkerJob) {
        switch job {
        case .evict(let id, let node):
            byID[id]?.session.evict(node)
        case .shutdown(let reason):
            beginShutdown(reason)
        case .sinkDurable:
            releaseDurableAcks()
        case .tokensReloaded:
            let authenticator = shared.authenticator
            for connection in Array(connections.values) where !connection.isClosed {
                connection.session.revalidate(authenticator)
                if connection.session.closeReason != nil { connection.sendOutgoing() }
            }
        }
    }

    // MARK: - Durable acks

    /// After a read: a connection whose acks wait for the sink is remembered.
    func noteAwaitingAcks(_ connection: ServerConnection) {
        if connection.session.hasAwaitingAcks { awaitingDurable[connection.fd] = connection }
    }

    private func releaseDurableAcks() {
        let durable = shared.sink.durableTicket
        for (fd, connection) in awaitingDurable {
            connection.session.releaseAcks(durable: durable)
            connection.sendOutgoing()
            if !connection.session.hasAwaitingAcks { awaitingDurable[fd] = nil }
        }
    }

    // MARK: - Backpressure

    /// Called after each read: past the sink's high-water mark, or while the sink refuses
    /// samples (its commits fail, its bounded store is full), stop reading every connection of
    /// this worker (EPOLLIN off) until the queue drains below the low-water mark and the sink
    /// takes samples again.
    func checkSinkPressure() {
        let sink = shared.sink
        guard !readingPaused else { return }
        let refuses = sink.refusesSamples
        guard refuses || sink.queuedSamples >= sink.highWater else { return }
        readingPaused = true
        stats.backpressurePauses.add()
        shared.limitLog.note("sink_backpressure", ["queued": sink.queuedSamples, "high_water": sink.highWater,
                                                   "reason": refuses ? (sink.notReadyReason ?? "sink full") : "queue above high water"])
        for connection in connections.values { connection.updateInterest() }
        scheduleResumeCheck()
    }

    private func scheduleResumeCheck() {
        reactor.schedule(afterNanos: 5_000_000) { [unowned self] in
            guard self.readingPaused, !self.shuttingDown else { return }
            let sink = self.shared.sink
            guard sink.queuedSamples < sink.lowWater, !sink.refusesSamples else { return self.scheduleResumeCheck() }
            self.readingPaused = false
            for connection in self.connections.values { connection.updateInterest() }
        }
    }

    // MARK: - Accepting

    private func acceptPending() {
        while !shuttingDown {
            let accepted: IOResult<(fd: Int32, peer: SocketAddress)>
            do { accepted = try Socket.accept(listener) } catch {
                stats.violation("accept_failed")
                shared.limitLog.note("accept_failed", ["error": error, "note": "connection refused"])
                if error.errno == EMFILE || error.errno == ENFILE { shedOnePending() }
                return
            }
            guard case .done(let (fd, peer)) = accepted else { return }
            guard shared.admitUnauthenticated(peer.host) else {
                stats.violation("max_unauthenticated_per_ip")
                shared.limitLog.note("max_unauthenticated_per_ip", ["peer": peer, "limit": shared.config.maxUnauthenticatedPerIP])
                Socket.close(fd)
                continue
            }
            stats.connectionsAccepted.add()
            // Full: a connection that has not said Hello for a second gives its place to the new
            // one, so silent sockets cannot lock agents out (issue #10, defect 10).
            if shared.openConnections() > shared.config.maxConnections, let idle = oldestUnauthenticated() {
                stats.violation("unauthenticated_displaced")
                shared.limitLog.note("unauthenticated_displaced", ["peer": idle.peer])
                idle.close()
            }
            guard shared.openConnections() <= shared.config.maxConnections else {
                stats.connectionsRejected.add()
                stats.violation("max_connections")
                shared.limitLog.note("max_connections", ["peer": peer, "limit": shared.config.maxConnections])
                shared.leaveUnauthenticated(peer.host)
                Socket.close(fd)
                continue
            }
            try? Socket.setNoDelay(fd)
            nextConnection += 1
            let owner = StreamOwner(worker: index, connection: nextConnection)
            let shared = self.shared
            let session = ServerSession(
                owner: owner, config: shared.config.session, nodes: shared.nodes, authenticator: { shared.authenticator },
                scorer: scorer, sink: shared.sink, stats: stats, scratch: storeScratch,
                evictElsewhere: { [unowned self] previous, node in self.evict(previous, node) })
            var tls: TLSSession?
            if let context = shared.tls {
                do { tls = try TLSSession(context: context, fd: fd) } catch {
                    Log.warning("tls_session_failed", ["peer": peer, "error": error])
                    shared.leaveUnauthenticated(peer.host)
                    Socket.close(fd)
                    continue
                }
            }
            let connection = ServerConnection(fd: fd, peer: peer, server: self, session: session,
                                              maxFrameBytes: shared.config.session.maxFrameBytes, tls: tls)
            do {
                try reactor.register(fd, events: .readable, handler: connection)
            } catch {
                Log.warning("register_failed", ["error": error])
                connection.close()
                continue
            }
            connections[fd] = connection
            byID[owner.connection] = connection
            connection.sendOutgoing()  // the server's preface
        }
    }

    /// This worker's oldest connection that opened no stream within a second of its accept.
    private func oldestUnauthenticated() -> ServerConnection? {
        let cutoff = Clock.monotonicNanos() &- 1_000_000_000
        var oldest: ServerConnection?
        for connection in connections.values where !connection.session.hasOpenedStream && connection.acceptedAtNs < cutoff {
            if oldest == nil || connection.acceptedAtNs < oldest!.acceptedAtNs { oldest = connection }
        }
        return oldest
    }

    /// Out of descriptors: frees the spare one, accepts the oldest pending connection and
    /// closes it at once (the peer sees a reset and backs off), then takes the spare back.
    private func shedOnePending() {
        guard reserveFD >= 0 else { return }
        Glibc.close(reserveFD)
        if case .done(let (fd, _))? = try? Socket.accept(listener) { Socket.close(fd) }
        reserveFD = open("/dev/null", O_RDONLY | O_CLOEXEC)
    }

    /// Closes the connection that held `node` before: here directly, elsewhere by mail.
    private func evict(_ previous: StreamOwner, _ node: String) {
        if previous.worker == index {
            byID[previous.connection]?.session.evict(node)
        } else {
            shared.mailboxes[previous.worker].post(.evict(connection: previous.connection, node: node))
        }
    }

    // MARK: - Timeouts

    /// How often the connections are swept for their deadlines: an eighth of the shortest
    /// timeout (handshake, frame, keepalive), between 50 ms and 1 s (so at the defaults, 1 s;
    /// an admin connection's 5 s limit is then kept within a second). Each sweep visits every
    /// connection: at 10,000 idle agents the fixed 250 ms it was cost 1.75 % of the server's
    /// CPU in perf (issue #17), and a 10 s handshake timeout still fires within 1 s of it.
    var sweepIntervalNs: UInt64 {
        let config = shared.config
        let timeouts = [config.handshakeTimeoutMs, config.frameTimeoutMs, UInt64(config.session.keepaliveIntervalMs)].filter { $0 > 0 }
        return min(1_000, max(50, (timeouts.min() ?? 8_000) / 8)) * 1_000_000
    }

    /// Every `sweepIntervalNs`: close connections that sent no Hello in time, ping idle ones,
    /// and close those that stayed silent for two keepalive intervals.
    private func scheduleSweep() {
        reactor.schedule(afterNanos: sweepIntervalNs) { [unowned self] in
            self.sweep(now: Clock.monotonicNanos())
            self.scheduleSweep()
        }
    }

    private func sweep(now: UInt64) {
        admin?.sweep(now: now)
        if index == 0 { forgetIdleNodes(now: now) }
        let handshakeNs = shared.config.handshakeTimeoutMs * 1_000_000
        let frameNs = shared.config.frameTimeoutMs * 1_000_000
        let keepaliveNs = UInt64(shared.config.session.keepaliveIntervalMs) * 1_000_000
        // Iterated in place, not copied into an array (10,000 retains every sweep at
        // 10,000 agents): a connection closed here leaves `connections`, and the dictionary's
        // copy-on-write gives that removal a copy of its own while this loop goes on.
        for connection in connections.values where !connection.isClosed {
            let session = connection.session
            if frameNs > 0, connection.isReading, let started = connection.frameStartedNs, now > started, now - started > frameNs {
                session.fail(.deadlineExceeded, "a frame did not arrive whole within \(shared.config.frameTimeoutMs) ms",
                             reason: "frame_timeout")
                connection.sendOutgoing()
                if !connection.isClosed && connection.pendingOutput > 0 { connection.close() }
            } else if !session.hasOpenedStream && now - connection.acceptedAtNs > handshakeNs {
                session.fail(.deadlineExceeded, "no Hello within \(shared.config.handshakeTimeoutMs) ms", reason: "handshake_timeout")
                connection.sendOutgoing()
                if !connection.isClosed && connection.pendingOutput > 0 { connection.close() }
            } else if keepaliveNs > 0 {
                let idle = now - connection.lastInputNs
                if idle > 2 * keepaliveNs {
                    stats.violation("keepalive_timeout")
                    shared.limitLog.note("keepalive_timeout", ["peer": connection.peer])
                    connection.close()
                } else if idle > keepaliveNs && connection.pingSentNs < connection.lastInputNs {
                    connection.pingSentNs = now
                    session.ping(nonce: now)
                    connection.sendOutgoing()
                }
            }
        }
    }

    private var lastForgetNs: UInt64 = 0

    /// Every 10 s (worker 0): nodes idle past `nodeForgetAfterNs` are dropped, with their
    /// models and histories.
    private func forgetIdleNodes(now: UInt64) {
        let after = shared.config.nodeForgetAfterNs
        guard after > 0, now - lastForgetNs >= 10_000_000_000 else { return }
        lastForgetNs = now
        let cutoff = Clock.unixNanos() - Int64(min(after, UInt64(Int64.max / 2)))
        let gone = shared.nodes.forgetIdle(before: cutoff)
        guard !gone.isEmpty else { return }
        shared.models?.forget(gone)
        shared.learner?.forget(gone)
        shared.detectors?.forget(gone)
        shared.notifier?.forget(gone)
        shared.nodesForgotten.add(UInt64(gone.count))
        Log.info("nodes_forgotten", ["count": gone.count, "idle_seconds": after / 1_000_000_000])
    }

    // MARK: - Shutdown

    /// Stops accepting, says Goodbye to every connection, and stops the reactor once all are
    /// drained or the grace period ends.
    private func beginShutdown(_ reason: String) {
        guard !shuttingDown else { return }
        shuttingDown = true
        reactor.unregister(listener)
        Socket.close(listener)
        admin?.close()
        // Read nothing more; give the sink one commit to make what was read durable and ack
        // it, then say Goodbye.
        readingPaused = true
        for connection in connections.values { connection.updateInterest() }
        reactor.schedule(afterNanos: 250_000_000) { [unowned self] in self.sayGoodbyeToAll(reason) }
    }

    private func sayGoodbyeToAll(_ reason: String) {
        releaseDurableAcks()
        for connection in Array(connections.values) {
            connection.session.sayGoodbye(reason)
            connection.sendOutgoing()
        }
        if connections.isEmpty { return finishShutdown() }
        reactor.schedule(afterNanos: shared.config.shutdownGraceMs * 1_000_000) { [unowned self] in
            for connection in Array(self.connections.values) { connection.close() }
            self.finishShutdown()
        }
    }

    private func finishShutdown() {
        reactor.handle.stop()
    }
}
