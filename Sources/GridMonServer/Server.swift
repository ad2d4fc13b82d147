import CGridMonPosix
import Glibc
import GridMonCore
import GridMonDetect
import GridMonNotify
import GridMonPosix
import GridMonTLS
import GridMonWire
import Synchronization

/// Settings of a `Server`, from the command line or environment.
public struct ServerConfig: Sendable {
    public var listen = SocketAddress(host: "127.0.0.1", port: 7070)
    /// The admin HTTP port (/metrics, /healthz, /readyz, /api/v1/nodes); nil = off.
    public var adminListen: SocketAddress? = SocketAddress(host: "127.0.0.1", port: 7071)
    /// Reactor threads, each with its own SO_REUSEPORT listener.
    public var threads = 1
    public var session = SessionConfig()
    public var maxConnections = 16_384
    /// Most admin HTTP connections open at once; more are closed at accept.
    public var maxAdminConnections = 64
    public var handshakeTimeoutMs: UInt64 = 10_000
    /// Output bytes queued per connection before it stops being read (backpressure).
    public var maxOutputBytes = 1 << 20
    /// How long a shutdown waits for connections to drain before closing them.
    public var shutdownGraceMs: UInt64 = 5_000
    /// Most nodes remembered, and most of one tenant (issue #10, defect 7).
    public var maxNodes = 1_000_000
    public var maxNodesPerTenant = 100_000
    /// A node no connection held for this long is forgotten (its samples are durable; an
    /// agent that returns starts from its own numbering). 0 = never.
    public var nodeForgetAfterNs: UInt64 = 3_600 * 1_000_000_000
    /// Largest frame before a connection has opened a stream: a Hello is small (its labels are
    /// bounded by `MetricNames`), and an unauthenticated peer must not make the server hold
    /// a 4 MiB buffer (issue #10, defect 5).
    public var preAuthMaxFrameBytes = 64 * 1024
    /// Mutual TLS names the tenant: a verified client certificate's subject CN is the tenant
    /// of the streams its connection opens (`--tls-tenant-from-certificate`).
    public var tlsTenantFromCertificate = false
    /// Bytes that all unauthenticated connections together may hold in half-read frames; a
    /// connection that would go past it is closed.
    public var preAuthBudgetBytes = 64 << 20
    /// A frame must arrive whole within this long of its first byte (a peer dribbling a byte
    /// at a time into a large frame is closed); 0 = off.
    public var frameTimeoutMs: UInt64 = 30_000
    /// Most connections from one IP address that have not yet opened a stream, so silent
    /// sockets from one host cannot fill `maxConnections` (high enough for a fleet's reconnect
    /// storm through one NAT address).
    public var maxUnauthenticatedPerIP = 1024
    public init() {}
}

/// What all reactor threads share: configuration, nodes, tokens, the sink, every worker's
/// counters and mailbox. Threading: every member is thread-safe.
final class ServerShared: Sendable {
    let config: ServerConfig
    let models: ModelRegistry?
    let learner: NodeLearner?
    /// Live per-node detection (`--scorer temporal`); nil for the other scorers.
    let detectors: DetectorBank?
    /// Delivers incidents to Alertmanager and webhooks; nil when no receiver is configured.
    let notifier: Notifier?
    let nodes: NodeTable
    let sink: SampleSink
    let nodesForgotten = Atomic<UInt64>(0)
    /// Bytes held by unauthenticated connections' half-read frames, over all workers.
    let preAuthBytes = Atomic<Int>(0)
    /// Unauthenticated connections per peer IP, over all workers.
    private let unauthenticated = Mutex<[String: Int]>([:])
    let stats: [ServerStats]
    let mailboxes: [WorkerMailbox]
    /// Logs limit hits without flooding the log when a limit is hit thousands of times.
    let limitLog = RateLimitedLog(intervalNs: 10_000_000_000)
    private let tokens: Mutex<Authenticator>
    private let adminTokens: Mutex<AdminAuth>
    private let tlsContext: Mutex<TLSContext?>
    private let adminTLSContext: Mutex<TLSContext?>

    init(config: ServerConfig, sink: SampleSink, authenticator: Authenticator, stats: [ServerStats], mailboxes: [WorkerMailbox],
         models: ModelRegistry?, learner: NodeLearner?, detectors: DetectorBank?, notifier: Notifier? = nil, adminAuth: AdminAuth = .open,
         tls: TLSContext? = nil, adminTLS: TLSContext? = nil) {
        self.config = config
        self.tlsContext = Mutex(tls)
        self.adminTLSContext = Mutex(adminTLS)
        self.adminTokens = Mutex(adminAuth)
        self.detectors = detectors
        self.notifier = notifier
        self.nodes = NodeTable(capacity: config.maxNodes, perTenant: config.maxNodesPerTenant)
        self.models = models
        self.learner = learner
        self.sink = sink
        self.stats = stats
        self.mailboxes = mailboxes
        self.tokens = Mutex(authenticator)
    }

    var authenticator: Authenticator {
        get { tokens.withLock { $0 } }
        set { tokens.withLock { $0 = newValue } }
    }

    /// The agent port's TLS context (nil: plain TCP); replaced on SIGHUP, while sessions
    /// already open keep the context they started with.
    var tls: TLSContext? {
        get { tlsContext.withLock { $0 } }
        set { tlsContext.withLock { $0 = newValue } }
    }

    /// The admin port's TLS context (nil: plain HTTP); replaced on SIGHUP.
    var adminTLS: TLSContext? {
        get { adminTLSContext.withLock { $0 } }
        set { adminTLSContext.withLock { $0 = newValue } }
    }

    /// Who may read the admin API (reloaded on SIGHUP).
    var adminAuth: AdminAuth {
        get { adminTokens.withLock { $0 } }
        set { adminTokens.withLock { $0 = newValue } }
    }

    /// Counts a new unauthenticated connection from `host`; false when that host has
    /// `maxUnauthenticatedPerIP` already (the connection is refused).
    func admitUnauthenticated(_ host: String) -> Bool {
        unauthenticated.withLock { table in
            guard table[host, default: 0] < config.maxUnauthenticatedPerIP else { return false }
            table[host, default: 0] += 1
            return true
        }
    }

    /// A connection from `host` authenticated or closed before it did.
    func leaveUnauthenticated(_ host: String) {
        unauthenticated.withLock { table in
            let left = table[host, default: 1] - 1
            table[host] = left > 0 ? left : nil
        }
    }

    /// A Prometheus label value (text format 0.0.4: `\\`, `"` and newline escaped).
    static func labelValue(_ text: String) -> String {
        var out = ""
        for c in text {
            switch c {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(c)
            }
        }
        return out
    }

    /// Agent connections open now, over all workers.
    func openConnections() -> Int {
        stats.reduce(0) { $0 + Int($1.connectionsAccepted.value) - Int($1.connectionsRejected.value) - Int($1.connectionsClosed.value) }
    }

    func metricsText() -> String {
        var text = ServerStats.prometheus(stats, openConnections: openConnections(), nodes: nodes.count, sinkQueued: sink.queuedSamples)
        text += "# HELP gridmon_tenant_nodes Nodes remembered per tenant.\n# TYPE gridmon_tenant_nodes gauge\n"
        for (tenant, count) in nodes.countsByTenant.sorted(by: { $0.key < $1.key }) {
            text += "gridmon_tenant_nodes{tenant=\"\(Self.labelValue(tenant))\"} \(count)\n"
        }
        text += "# HELP gridmon_nodes_forgotten_total Nodes dropped after being idle past --node-forget-after-seconds.\n"
            + "# TYPE gridmon_nodes_forgotten_total counter\ngridmon_nodes_forgotten_total \(nodesForgotten.value)\n"
        text += "# HELP gridmon_pre_auth_bytes Bytes of half-read frames held for unauthenticated connections.\n"
            + "# TYPE gridmon_pre_auth_bytes gauge\ngridmon_pre_auth_bytes \(preAuthBytes.load(ordering: .relaxed))\n"
        text += sink.metricsText
        if let models {
            text += "# HELP gridmon_node_models Nodes scored by a model learned from their own history.\n# TYPE gridmon_node_models gauge\ngridmon_node_models \(models.nodeModelCount)\n"
            text += "# HELP gridmon_tenant_models Tenant models loaded.\n# TYPE gridmon_tenant_models gauge\ngridmon_tenant_models \(models.tenantModelCount)\n"
        }
        if let learner {
            text += "# HELP gridmon_node_model_fits_total Per-node models fit.\n# TYPE gridmon_node_model_fits_total counter\ngridmon_node_model_fits_total \(learner.fits.value)\n"
            text += "# HELP gridmon_node_model_skipped_total Per-node fits skipped (queue full or model limit).\n# TYPE gridmon_node_model_skipped_total counter\ngridmon_node_model_skipped_total \(learner.skipped.value)\n"
        }
        if let detectors { text += Self.detectionMetrics(detectors) }
        if let notifier { text += notifier.metricsText }
        text += "# HELP gridmon_build_info The running build: version, Swift compiler, wire and outbox format versions.\n"
            + "# TYPE gridmon_build_info gauge\ngridmon_build_info{version=\"\(BuildInfo.version)\",swift=\"\(BuildInfo.swiftVersion)\","
            + "wire=\"\(BuildInfo.wireVersion)\",outbox=\"\(BuildInfo.outboxVersion)\"} 1\n"
        return text + ProcessMetrics.prometheusText()
    }

    /// The live detectors' and incidents' counters (issue #11).
    static func detectionMetrics(_ bank: DetectorBank) -> String {
        let (count, bytes) = bank.footprint()
        var text = "# HELP gridmon_incidents_open Incidents open now.\n# TYPE gridmon_incidents_open gauge\n"
            + "gridmon_incidents_open \(bank.incidents.openCount)\n"
        text += "# HELP gridmon_incidents_total Incidents opened, per tenant.\n# TYPE gridmon_incidents_total counter\n"
        for (tenant, opened) in bank.incidents.openedByTenant.sorted(by: { $0.key < $1.key }) {
            text += "gridmon_incidents_total{tenant=\"\(labelValue(tenant))\"} \(opened)\n"
        }
        text += "# HELP gridmon_detectors Nodes with a live detector (learning or fit).\n# TYPE gridmon_detectors gauge\ngridmon_detectors \(count)\n"
        text += "# HELP gridmon_detector_bytes Memory held by the live detectors (features, history, forests).\n"
            + "# TYPE gridmon_detector_bytes gauge\ngridmon_detector_bytes \(bytes)\n"
        text += "# HELP gridmon_detector_fits_total Per-node detector fits.\n# TYPE gridmon_detector_fits_total counter\n"
            + "gridmon_detector_fits_total \(bank.fits.load(ordering: .relaxed))\n"
        text += "# HELP gridmon_detector_degenerate_fits_total Fits on constant history (the node is not judged until it moves).\n"
            + "# TYPE gridmon_detector_degenerate_fits_total counter\ngridmon_detector_degenerate_fits_total \(bank.degenerateFits.load(ordering: .relaxed))\n"
        text += "# HELP gridmon_detector_skipped_fits_total Fits not queued because the trainer had stopped (retried later).\n"
            + "# TYPE gridmon_detector_skipped_fits_total counter\ngridmon_detector_skipped_fits_total \(bank.skippedFits.load(ordering: .relaxed))\n"
        text += "# HELP gridmon_detector_fit_seconds_total Time the trainer spent fitting.\n# TYPE gridmon_detector_fit_seconds_total counter\n"
            + "gridmon_detector_fit_seconds_total \(Double(bank.fitNanos.load(ordering: .relaxed)) / 1e9)\n"
        text += "# HELP gridmon_unjudged_samples_total Samples not judged because the detector limit was reached.\n"
            + "# TYPE gridmon_unjudged_samples_total counter\ngridmon_unjudged_samples_total \(bank.unjudgedSamples.load(ordering: .relaxed))\n"
        return text
    }
}

/// The GridMon stream server: `threads` epoll reactors behind one port, the admin port,
/// and a clean shutdown on SIGINT/SIGTERM.
///
/// Threading: `run()` blocks the calling thread until shutdown; the workers run on threads of
/// their own, and signals are read (signalfd) on worker 0's reactor.
public final class Server: @unchecked Sendable {  // shutdown() may come from any thread; the rest is set before run()
    public let config: ServerConfig
    private let authenticator: Authenticator
    private let sink: SampleSink
    private let makeScorer: () -> Scorer
    /// Re-reads the tokens file on SIGHUP; nil when auth is off.
    public var reloadTokens: (() throws -> Authenticator)?
    /// TLS on the agent port (`--tls-cert`/`--tls-key`); nil serves plain TCP.
    public var tls: TLSContext?
    /// Re-reads the certificate and key on SIGHUP; nil without TLS.
    public var reloadTLS: (() throws -> TLSContext)?
    /// TLS on the admin port (`--admin-tls`, the same certificate; no client certificates).
    public var adminTLS: TLSContext?
    public var reloadAdminTLS: (() throws -> TLSContext)?
    /// Who may read the admin API (`--admin-tokens-file`); open by default.
    public var adminAuth = AdminAuth.open
    /// Re-reads the admin tokens file on SIGHUP; nil when there is none.
    public var reloadAdminTokens: (() throws -> AdminAuth)?
    /// Re-reads the model files on SIGHUP (default and tenant models; node models stay).
    public var reloadModels: (() throws -> Void)?
    /// The models scoring uses, for the admin port (nil when scoring is not by forest).
    public var models: ModelRegistry?
    /// Learns per-node models; started with the server, stopped after it.
    public var learner: NodeLearner?
    /// Live per-node detectors (`--scorer temporal`); their trainer starts and stops with the server.
    public var detectors: DetectorBank?
    /// Incidents to people (`--alertmanager-url`, `--webhook-url`, `--slack-url`); started
    /// with the server, stopped (its queue committed) after it.
    public var notifier: Notifier?
    private let running = Mutex<ServerShared?>(nil)

    /// Starts a graceful shutdown from any thread, as SIGTERM does.
    public func shutdown() {
        guard let shared = running.withLock({ $0 }) else { return }
        for mailbox in shared.mailboxes { mailbox.post(.shutdown(reason: "server shutting down")) }
    }

    /// Counters of the running server in Prometheus text (empty before `run()`).
    public func metricsText() -> String {
        running.withLock { $0 }?.metricsText() ?? ""
    }

    /// - Parameter makeScorer: called once per reactor thread (scorers need not be thread-safe).
    public init(config: ServerConfig, authenticator: Authenticator, scorer makeScorer: @escaping () -> Scorer, sink: SampleSink) {
        self.config = config
        self.authenticator = authenticator
        self.makeScorer = makeScorer
        self.sink = sink
    }

    /// Binds, serves until SIGINT/SIGTERM, drains, and returns.
    /// - Throws: `SyscallError` when a listener cannot be bound or a reactor not created.
    public func run() throws(SyscallError) {
        // Signals go to the signalfd only: block them before any thread starts (threads inherit).
        var mask = sigset_t()
        sigemptyset(&mask)
        for signal in [SIGINT, SIGTERM, SIGHUP] { sigaddset(&mask, signal) }
        pthread_sigmask(SIG_BLOCK, &mask, nil)

        let threads = max(1, config.threads)
        var listeners: [Int32] = []
        var workers: [Worker] = []
        do throws(SyscallError) {
            // The first listener picks the port (maybe 0 = any); the others share it. SO_REUSEPORT
            // would let this server share a port another server holds, splitting agents between
            // two data directories: refuse instead.
            if try Socket.isAddressInUse(config.listen) {
                throw SyscallError(call: "bind(\(config.listen)): the port is in use (another gridmon-stream-server?)", errno: EADDRINUSE)
            }
            let first = try Socket.listen(config.listen, reusePort: true)
            listeners.append(first)
            let bound = try Socket.localAddress(first)
            for _ in 1..<threads { listeners.append(try Socket.listen(bound, reusePort: true)) }
            let reactors = try (0..<threads).map { (_: Int) throws(SyscallError) in try Reactor() }
            let shared = ServerShared(
                config: config, sink: sink, authenticator: authenticator, stats: (0..<threads).map { _ in ServerStats() },
                mailboxes: reactors.map { WorkerMailbox(reactor: $0.handle) }, models: models, learner: learner, detectors: detectors,
                notifier: notifier, adminAuth: adminAuth, tls: tls, adminTLS: adminTLS)
            running.withLock { $0 = shared }
            let startedNs = Clock.unixNanos()
            for (key, seq) in sink.restoredNodes { shared.nodes.restore(key, durableSeq: seq, nowNs: startedNs) }
            let mailboxes = shared.mailboxes
            sink.start { _ in for mailbox in mailboxes { mailbox.post(.sinkDurable) } }
            for i in 0..<threads {
                workers.append(try Worker(index: i, shared: shared, reactor: reactors[i], listener: listeners[i], scorer: makeScorer()))
            }

            if let adminAddress = config.adminListen {
                let adminListener = try Socket.listen(adminAddress, backlog: 128)
                workers[0].admin = try AdminPort(worker: workers[0], listener: adminListener)
                Log.info("admin_listening", ["address": try Socket.localAddress(adminListener),
                                             "api": adminAuth.isOpen ? "open" : "\(adminAuth.tokenCount) bearer tokens",
                                             "transport": adminTLS == nil ? "HTTP" : "HTTPS"])
                if adminAuth.isOpen && adminAddress.host != "127.0.0.1" {
                    Log.warning("admin_api_open", ["address": adminAddress,
                                                   "note": "anyone who reaches this address reads every tenant's nodes and incidents; set --admin-tokens-file"])
                }
            }
            let signalFD = try syscallChecked("signalfd") { signalfd(-1, &mask, Int32(SFD_NONBLOCK | SFD_CLOEXEC)) }
            try workers[0].reactor.register(signalFD, events: .readable, handler: SignalHandler(fd: signalFD, server: self, shared: shared))
            Log.info("listening", ["address": bound, "threads": threads, "max_connections": config.maxConnections,
                                   "transport": tls == nil ? "plain TCP" : "TLS",
                                   "auth": authenticator.insecure ? "OFF (--insecure-no-auth)"
                                    : config.tlsTenantFromCertificate ? "client certificates name tenants; \(authenticator.tokenCount) tokens"
                                    : "\(authenticator.tokenCount) tokens"])
            if authenticator.insecure {
                Log.warning("insecure_no_auth", ["note": "every Hello is accepted without a token; for demos only"])
            }
            learner?.start()
            detectors?.start()
            notifier?.start()
            // Worker 0 runs here; the others on threads of their own.
            var threadsStarted: [PosixThread] = []
            for worker in workers.dropFirst() {
                // Handed over once, then confined to its thread.
                let handoff = UncheckedSendable(worker)
                threadsStarted.append(PosixThread {
                    do { try handoff.value.run() } catch { Log.error("worker_failed", ["worker": handoff.value.index, "error": error]) }
                })
            }
            try workers[0].run()
            for thread in threadsStarted { thread.join() }
            learner?.stop()
            detectors?.stop()
            notifier?.stop()
            sink.stop()
            Socket.close(signalFD)
            let total = shared.stats.reduce(0) { $0 + $1.samplesAccepted.value }
            Log.info("stopped", ["samples": total, "connections": shared.stats.reduce(0) { $0 + $1.connectionsAccepted.value }])
        } catch {
            for fd in listeners { Socket.close(fd) }
            throw error
        }
    }

    fileprivate func handleSignal(_ signal: Int32, shared: ServerShared) {
        switch signal {
        case SIGHUP:
            if let reloadTokens {
                do {
                    shared.authenticator = try reloadTokens()
                    Log.info("tokens_reloaded", ["tokens": shared.authenticator.tokenCount])
                    for mailbox in shared.mailboxes { mailbox.post(.tokensReloaded) }
                } catch {
                    Log.error("tokens_reload_failed", ["error": error, "kept": shared.authenticator.tokenCount])
                }
            }
            if let reloadTLS {
                do {
                    shared.tls = try reloadTLS()
                    Log.info("tls_reloaded", ["note": "new connections use the new certificate; open ones keep theirs"])
                } catch {
                    Log.error("tls_reload_failed", ["error": error, "note": "the certificate in use is kept"])
                }
            }
            if let reloadAdminTLS {
                do { shared.adminTLS = try reloadAdminTLS() } catch {
                    Log.error("admin_tls_reload_failed", ["error": error, "note": "the certificate in use is kept"])
                }
            }
            if let reloadAdminTokens {
                do {
                    shared.adminAuth = try reloadAdminTokens()
                    Log.info("admin_tokens_reloaded", ["tokens": shared.adminAuth.tokenCount])
                } catch {
                    Log.error("admin_tokens_reload_failed", ["error": error, "kept": shared.adminAuth.tokenCount])
                }
            }
            if let reloadModels {
                do {
                    try reloadModels()
                    Log.info("models_reloaded", ["tenant_models": models?.tenantModelCount ?? 0])
                } catch {
                    Log.error("models_reload_failed", ["error": error, "note": "the models in use are kept"])
                }
            }
        default:
            let name = signal == SIGINT ? "SIGINT" : "SIGTERM"
            Log.info("shutting_down", ["signal": name, "connections": shared.openConnections()])
            for mailbox in shared.mailboxes { mailbox.post(.shutdown(reason: "server shutting down")) }
        }
    }
}

/// Reads signalfd records and hands the signal numbers to the server.
private final class SignalHandler: EventHandler {
    let fd: Int32
    unowned let server: Server
    let shared: ServerShared
    init(fd: Int32, server: Server, shared: ServerShared) {
        self.fd = fd
        self.server = server
        self.shared = shared
    }
    func handleEvents(_ events: IOEvents) {
        var info = signalfd_siginfo()
        while Glibc.read(fd, &info, MemoryLayout<signalfd_siginfo>.size) == MemoryLayout<signalfd_siginfo>.size {
            server.handleSignal(Int32(info.ssi_signo), shared: shared)
        }
    }
}

/// Moves a value that is not Sendable to another thread that alone uses it from then on.
private struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
