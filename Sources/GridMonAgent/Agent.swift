import CGridMonPosix
import Glibc
import GridMonPosix
import GridMonWire

/// Settings of the agent.
public struct AgentConfig: Sendable {
    public var server = SocketAddress(host: "127.0.0.1", port: 7070)
    public var nodeID = "localhost"
    public var token = ""
    public var labels: [Label] = []
    public var intervalNs: UInt64 = 1_000_000_000
    /// Unacknowledged samples kept while the server is away (oldest dropped past it).
    public var bufferCapacity = 86_400
    public var diskPath = "/"
    /// How long a shutdown waits for the last acks before saying Goodbye.
    public var drainNs: UInt64 = 3_000_000_000
    public init() {}
}

/// The agent: samples this machine every interval and streams the samples over one
/// persistent connection, on an epoll reactor.
///
/// Survives server restarts: reconnects with capped exponential backoff and full jitter,
/// keeps collecting into a bounded buffer meanwhile, and on each `Welcome` resends what the
/// server has not made durable. On SIGINT/SIGTERM it stops sampling, waits (bounded) for
/// the outstanding acks, says Goodbye and returns. Threading: one thread (`run()`).
public final class Agent: EventHandler {
    static let version = "gridmon-agent/0.1.0"
    static let maxBatch = 512

    public let config: AgentConfig
    private let reactor: Reactor
    private let sampler: SystemSampler
    private let encoder = MessageEncoder()
    private var buffer: SampleBuffer
    private var fd: Int32 = -1
    private var connected = false
    private var welcomed = false
    private var numbered = false
    private var nextSeq: UInt64 = 1
    private var decoder = FrameDecoder()
    private var output: [UInt8] = []
    private var outputOffset = 0
    private var failures = 0
    private var stopping = false
    private var random = SystemRandomNumberGenerator()
    private var signalFD: Int32 = -1
    public private(set) var acked: UInt64 = 0

    public init(config: AgentConfig) throws(SyscallError) {
        self.config = config
        self.reactor = try Reactor()
        self.sampler = SystemSampler(diskPath: config.diskPath)
        self.buffer = SampleBuffer(capacity: config.bufferCapacity)
    }

    /// Runs until SIGINT/SIGTERM.
    public func run() throws(SyscallError) {
        var mask = sigset_t()
        sigemptyset(&mask)
        sigaddset(&mask, SIGINT)
        sigaddset(&mask, SIGTERM)
        pthread_sigmask(SIG_BLOCK, &mask, nil)
        signalFD = try syscallChecked("signalfd") { signalfd(-1, &mask, Int32(SFD_NONBLOCK | SFD_CLOEXEC)) }
        try reactor.register(signalFD, events: .readable, handler: SignalListener(fd: signalFD) { [unowned self] in self.beginShutdown() })
        Log.info("agent_started", ["node": config.nodeID, "server": config.server, "interval_ms": config.intervalNs / 1_000_000])
        connect()
        tick()
        try reactor.run()
        Log.info("agent_stopped", ["acked": acked, "unacked": buffer.count, "dropped": buffer.dropped])
    }

    // MARK: - Sampling

    private func tick() {
        guard !stopping else { return }
        let before = buffer.dropped
        buffer.append(sampler.sample(seq: nextSeq))
        nextSeq = min(nextSeq + 1, SampleBuffer.maxSeq)
        if buffer.dropped > before && (buffer.dropped == 1 || buffer.dropped % 1000 == 0) {
            Log.warning("buffer_full", ["capacity": buffer.capacity, "dropped_total": buffer.dropped])
        }
        pump()
        reactor.schedule(afterNanos: config.intervalNs) { [weak self] in self?.tick() }
    }

    // MARK: - Connection

    private func connect() {
        guard !stopping else { return }
        do {
            fd = try Socket.connect(config.server)
            try? Socket.setNoDelay(fd)
            decoder = FrameDecoder()
            output = Preface.bytes
            outputOffset = 0
            encoder.appendFrame(.hello(Hello(nodeID: config.nodeID, agentVersion: Self.version, labels: config.labels,
                                             authToken: config.token, streamID: 1)), to: &output)
            try reactor.register(fd, events: [.readable, .writable], handler: self)
        } catch {
            Log.warning("connect_failed", ["server": config.server, "error": error])
            scheduleReconnect()
        }
    }

    public func handleEvents(_ events: IOEvents) {
        if !connected && events.contains(.writable) {
            if let error = Socket.pendingError(fd) {
                Log.warning("connect_failed", ["server": config.server, "error": error])
                return drop()
            }
            connected = true
            Log.info("connected", ["server": config.server])
        }
        if !events.isDisjoint(with: [.readable, .hangup, .error]) { read() }
        if fd >= 0 && events.contains(.writable) { flush() }
    }

    private func read() {
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        while fd >= 0 {
            let result: IOResult<Int>
            do { result = try chunk.withUnsafeMutableBytes { try Socket.read(fd, into: $0) } } catch {
                Log.warning("connection_lost", ["error": error])
                return drop()
            }
            guard case .done(let count) = result else { break }
            if count == 0 {
                Log.warning("connection_lost", ["reason": "server closed the connection"])
                return drop()
            }
            do {
                try chunk.withUnsafeBytes { raw in
                    try decoder.decode(UnsafeRawBufferPointer(rebasing: raw[..<count])) { handle(try Message(payload: $0)) }
                }
            } catch {
                Log.warning("bad_server_data", ["error": error])
                return drop()
            }
        }
        pump()
    }

    private func handle(_ message: Message) {
        switch message {
        case .welcome(let welcome):
            if !numbered {
                // A fresh agent: continue the server's numbering for this node.
                guard let last = buffer.renumber(after: welcome.durableSeq) else {
                    Log.error("bad_welcome", ["durable_seq": welcome.durableSeq,
                                              "note": "the server's seq for this node leaves no room to number on; not continuing it"])
                    return drop()
                }
                nextSeq = last + 1
                numbered = true
            } else {
                buffer.acknowledge(welcome.durableSeq)
            }
            buffer.resendAll()
            welcomed = true
            failures = 0
            Log.info("welcomed", ["server_id": welcome.serverID, "durable_seq": welcome.durableSeq, "resending": buffer.count])
        case .ack(let ack):
            let before = buffer.count
            buffer.acknowledge(ack.durableSeq)
            acked += UInt64(before - buffer.count)
            for verdict in ack.anomalies {
                Log.warning("anomaly", ["node": config.nodeID, "seq": verdict.seq, "score": verdict.score])
            }
            if stopping && buffer.isEmpty { finish() }
        case .ping(let ping):
            encoder.appendFrame(.pong(Pong(nonce: ping.nonce)), to: &output)
        case .error(let error):
            Log.error("server_error", ["code": error.code, "message": error.message])
        case .goodbye(let goodbye):
            Log.info("server_goodbye", ["reason": goodbye.reason])
        case .hello, .samples, .pong:
            break
        }
    }

    private func pump() {
        guard welcomed, fd >= 0 else { return }
        while output.count - outputOffset < 256 * 1024 {
            let batch = buffer.takeUnsent(max: Self.maxBatch)
            if batch.isEmpty { break }
            encoder.appendFrame(.samples(SampleBatch(streamID: 1, samples: batch)), to: &output)
        }
        flush()
    }

    private func flush() {
        while fd >= 0 && outputOffset < output.count {
            let result: IOResult<Int>
            do {
                result = try output.withUnsafeBytes { try Socket.write(fd, UnsafeRawBufferPointer(rebasing: $0[outputOffset...])) }
            } catch {
                Log.warning("connection_lost", ["error": error])
                return drop()
            }
            guard case .done(let n) = result else { break }
            outputOffset += n
        }
        guard fd >= 0 else { return }
        if outputOffset == output.count {
            output.removeAll(keepingCapacity: true)
            outputOffset = 0
        }
        try? reactor.modify(fd, events: output.isEmpty && connected ? .readable : [.readable, .writable])
    }

    private func drop() {
        guard fd >= 0 else { return }
        reactor.unregister(fd)
        Socket.close(fd)
        fd = -1
        connected = false
        welcomed = false
        if stopping { return finish() }
        scheduleReconnect()
    }

    private func scheduleReconnect() {
        failures += 1
        // Capped exponential backoff with full jitter (AWS Architecture Blog, "Exponential
        // Backoff And Jitter"), so a restarted server is not hit by the whole fleet at once.
        let cap = min(UInt64(30_000_000_000), UInt64(250_000_000) << UInt64(min(failures, 8)))
        let delay = UInt64.random(in: 0...cap, using: &random)
        Log.info("reconnecting", ["in_ms": delay / 1_000_000, "attempt": failures, "buffered": buffer.count])
        reactor.schedule(afterNanos: delay) { [weak self] in self?.connect() }
    }

    // MARK: - Shutdown

    private func beginShutdown() {
        guard !stopping else { return }
        stopping = true
        Log.info("shutting_down", ["unacked": buffer.count])
        if !welcomed || buffer.isEmpty { return finish() }
        reactor.schedule(afterNanos: config.drainNs) { [weak self] in self?.finish() }
    }

    private var finished = false

    private func finish() {
        guard !finished else { return }
        finished = true
        if fd >= 0 {
            encoder.appendFrame(.goodbye(Goodbye(reason: "agent shutting down")), to: &output)
            flush()
            reactor.unregister(fd)
            Socket.close(fd)
            fd = -1
        }
        reactor.handle.stop()
    }
}

/// Drains a signalfd and calls `action` once per readiness.
final class SignalListener: EventHandler {
    let fd: Int32
    let action: () -> Void
    init(fd: Int32, _ action: @escaping () -> Void) {
        self.fd = fd
        self.action = action
    }
    func handleEvents(_ events: IOEvents) {
        var info = signalfd_siginfo()
        while Glibc.read(fd, &info, MemoryLayout<signalfd_siginfo>.size) == MemoryLayout<signalfd_siginfo>.size {}
        action()
    }
}
