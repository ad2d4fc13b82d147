import GridMonPosix
import GridMonTLS

/// The admin HTTP listener and its connections, on worker 0's reactor.
///
/// Bounded: at most `ServerConfig.maxAdminConnections` open, each closed after answering
/// or after `AdminConnection.timeoutNs`.
/// Threading: confined to worker 0's thread.
final class AdminPort: EventHandler {
    private unowned let worker: Worker
    private let listener: Int32
    private var connections: [Int32: AdminConnection] = [:]
    private var closed = false

    init(worker: Worker, listener: Int32) throws(SyscallError) {
        self.worker = worker
        self.listener = listener
        try worker.reactor.register(listener, events: .readable, handler: self)
    }

    func handleEvents(_ events: IOEvents) {
        while case .done(let (fd, _))? = try? Socket.accept(listener) {
            guard connections.count < worker.shared.config.maxAdminConnections else {
                worker.stats.violation("max_admin_connections")
                worker.shared.limitLog.note("max_admin_connections", ["limit": worker.shared.config.maxAdminConnections])
                Socket.close(fd)
                continue
            }
            var tls: TLSSession?
            if let context = worker.shared.adminTLS {
                guard let session = try? TLSSession(context: context, fd: fd) else {
                    Socket.close(fd)
                    continue
                }
                tls = session
            }
            let connection = AdminConnection(fd: fd, server: worker, tls: tls)
            guard (try? worker.reactor.register(fd, events: .readable, handler: connection)) != nil else {
                Socket.close(fd)
                continue
            }
            connections[fd] = connection
        }
    }

    func response(to request: HTTPRequestParser.Request) -> [UInt8] {
        let shared = worker.shared
        return AdminRoutes.respond(
            to: request, metrics: shared.metricsText, notReady: worker.shuttingDown ? "shutting down" : shared.sink.notReadyReason,
            nodes: shared.nodes, incidents: shared.detectors?.incidents, auth: shared.adminAuth,
            onRefused: { [worker] status in worker.stats.violation(status == 401 ? "admin_unauthenticated" : "admin_forbidden") },
            nowNs: Clock.unixNanos(),
            detail: { key in
                if let models = shared.models { return NodeDetail(model: models.kind(node: key.node, tenant: key.tenant).rawValue) }
                guard let bank = shared.detectors else { return NodeDetail(model: "static") }
                guard let d = bank.describe(key) else { return NodeDetail(model: "none", detector: "learning", detectorMetrics: 0, detectorBytes: 0) }
                let model = d.state == .learning ? (bank.hasPrior ? "configured" : "none") : "own"
                return NodeDetail(model: model, detector: d.state.name, detectorMetrics: d.metrics, detectorBytes: d.bytes)
            })
    }

    func connectionClosed(_ connection: AdminConnection) {
        worker.reactor.unregister(connection.fd)
        connections[connection.fd] = nil
    }

    func sweep(now: UInt64) {
        for connection in Array(connections.values) where now - connection.openedAtNs > AdminConnection.timeoutNs {
            connection.close()
        }
    }

    func close() {
        guard !closed else { return }
        closed = true
        worker.reactor.unregister(listener)
        Socket.close(listener)
        for connection in Array(connections.values) { connection.close() }
    }
}
