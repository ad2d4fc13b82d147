import CGridMonPosix
import Glibc
import GridMonCore
import GridMonPosix
import GridMonTLS
import GridMonWire

/// Settings of the agent.
public struct AgentConfig: Sendable {
    /// Servers in order of preference: the agent fails over down the list and returns to
    /// the first after `failbackNs`.
    public var servers = [Endpoint(host: "127.0.0.1", port: 7070)]
    public var nodeID = "localhost"
    public var token = ""
    public var labels: [Label] = []
    public var intervalNs: UInt64 = 1_000_000_000
    public var collectors = CollectorConfig()
    /// In-memory buffer bounds (without `bufferDirectory`): samples and approximate bytes.
    public var bufferCapacity = 86_400
    public var bufferMaxBytes = 64 << 20
    /// Where the disk buffer lives; nil keeps unacknowledged samples in memory only.
    public var bufferDirectory: String?
    public var bufferMaxAgeNs: Int64 = 86_400 * 1_000_000_000
    /// How long a shutdown waits for the last acks before saying Goodbye.
    public var drainNs: UInt64 = 3_000_000_000
    /// A connect that has not completed by then is abandoned (a black-holed address would
    /// otherwise take the kernel's two minutes of SYN retries).
    public var connectTimeoutNs: UInt64 = 5_000_000_000
    /// A server that accepted the connection but sent no Welcome by then (after the connect)
    /// is left.
    public var welcomeTimeoutNs: UInt64 = 10_000_000_000
    /// While connected to a server other than the first, return to the first after this.
    public var failbackNs: UInt64 = 300_000_000_000
    /// TLS to every server (`--tls`); nil speaks plain TCP.
    public var tls: TLSContext?
    /// The name the server's certificate must carry; nil = the host of each `--server`.
    public var tlsServerName: String?
    /// Verification is off (said at start, at warn, and on every connection).
    public var tlsInsecureSkipVerify = false
    /// Random per process: tells the server a reconnect of this agent from a second machine
    /// using the same node id.
    public var instanceID = String(UInt64.random(in: 1...UInt64.max), radix: 16)
    public init() {}
}

/// The agent: samples this machine every interval and streams the samples over one
/// persistent connection, on an epoll reactor.
///
/// Survives server restarts: reconnects with capped exponential backoff and full jitter,
/// trying every address of every configured server in order; keeps collecting into a
/// bounded queue (memory, or a disk buffer that survives restarts) meanwhile; and on each
/// `Welcome` resends what the server has not made durable. The backoff resets only once a
/// server acknowledged samples, so one that welcomes and hangs up, or sends garbage, is
/// retried ever more slowly, never in a loop. On SIGINT/SIGTERM it stops sampling, waits
/// (bounded) for the outstanding acks, says Goodbye, syncs the buffer and returns.
/// Threading: one thread (`run()`).
public final class Agent: EventHandler {
    static let version = "gridmon-agent/" + BuildInfo.version
    static let maxBatch = 512
    /// Verdicts of one Ack logged a line each; the rest are summed up in one line. An Ack after
    /// an outage can carry thousands (a hostile server's, millions: a line each kept the agent
    /// busy for more than 30 s, deaf to SIGTERM, in AgentMisbehavingServerTests).
    static let maxAnomalyLinesPerAck = 100

    public let config: AgentConfig
    private let reactor: Reactor
    private let sampler: SystemSampler
    private let encoder = MessageEncoder()
    private let queue: any SampleQueue
    private var fd: Int32 = -1
    /// The TLS session of this connection (with `config.tls`), made once TCP connects.
    private var session: TLSSession?
    /// What the TLS session needs from the socket before it can go on.
    private var tlsNeed: TLSSession.Need?
    /// Per server (index), the TLS session to resume: a reconnect skips the certificate
    /// exchange and the server's signature (a quarter of a full handshake's server CPU).
    private var resumable: [Int: TLSSavedSession] = [:]
    /// Bumped per connection attempt, so timers of an earlier one do nothing.
    private var generation = 0
    private var connected = false
    private var welcomed = false
    private var nextSeq: UInt64
    private var decoder = FrameDecoder()
    /// The server's budget for what a frame decodes to (16 × the 4 MiB frame cap): an Ack's
    /// verdicts take about 8 times their bytes in protobuf-c's structs, and an Ack of 4 MB of
    /// empty verdicts would be hundreds of MB (`DecodeBudgetTests`).
    private let messageDecoder = MessageDecoder()
    private var output: [UInt8] = []
    private var outputOffset = 0
    private var failures = 0
    private var stopping = false
    private var random = SystemRandomNumberGenerator()
    /// Which server, and which of its addresses, this attempt is on.
    private var serverIndex = 0
    private var addresses: [ResolvedAddress] = []
    private var addressIndex = 0
    private var peer = ""
    /// Whether the server on this connection acknowledged anything (it works, as a server).
    private var ackedHere = false
    /// The largest frame payload the server takes (its Welcome says; gRPC's 4 MiB before).
    private var serverFrameLimit = FrameFormat.defaultMaxFrameSize
    /// Samples larger than a frame the server takes: skipped (`appendBatch`).
    private var tooLarge: UInt64 = 0
    private var reportedDropped: UInt64
    private var lastDropReportNs: UInt64 = 0
    public private(set) var acked: UInt64 = 0

    /// - Throws: when the reactor or the disk buffer cannot be set up.
    public init(config: AgentConfig) throws(SyscallError) {
        precondition(!config.servers.isEmpty, "validated by the command line")
        self.config = config
        self.reactor = try Reactor()
        self.sampler = SystemSampler(config.collectors)
        if let directory = config.bufferDirectory {
            var limits = DiskSampleQueue.Limits()
            limits.maxBytes = config.bufferMaxBytes
            limits.maxAgeNs = config.bufferMaxAgeNs
            queue = try DiskSampleQueue(directory: directory, limits: limits)
        } else {
            queue = MemorySampleQueue(capacity: config.bufferCapacity, maxBytes: config.bufferMaxBytes)
        }
        nextSeq = min(queue.lastSeq + 1, SampleBuffer.maxSeq)
        reportedDropped = queue.dropped
    }

    /// Runs until SIGINT/SIGTERM.
    public func run() throws(SyscallError) {
        let signals = try SignalSource([SIGINT, SIGTERM]) { [unowned self] _ in self.beginShutdown() }
        try reactor.register(signals.fd, events: .readable, handler: signals)
        Log.info("agent_started", ["node": config.nodeID, "servers": config.servers.map(\.description).joined(separator: ","),
                                   "interval_ms": config.intervalNs / 1_000_000, "collectors": sampler.collectorNames.joined(separator: ","),
                                   "buffer": config.bufferDirectory ?? "memory", "buffered": queue.count, "next_seq": nextSeq,
                                   "transport": config.tls == nil ? "plain TCP" : "TLS"])
        if config.tlsInsecureSkipVerify {
            Log.warning("tls_insecure_skip_verify", ["note": "servers are not verified: anyone on the path can read and change the data"])
        }
        startRound()
        // A first read primes the rates, so the first sample sent already carries every gauge:
        // a server fixes a node's detector columns from its first sample (MetricLayout).
        _ = sampler.sample(seq: 0)
        reactor.schedule(afterNanos: min(config.intervalNs, 1_000_000_000)) { [weak self] in self?.tick() }
        try reactor.run()
        queue.sync()
        if queue.count > 0 && config.bufferDirectory == nil {
            Log.warning("agent_stopped", ["acked": acked, "unacked": queue.count, "dropped_total": queue.dropped,
                                          "note": "unacknowledged samples are lost: keep them across restarts with --buffer-dir"])
        } else {
            Log.info("agent_stopped", ["acked": acked, "unacked": queue.count, "dropped_total": queue.dropped,
                                       "buffer": config.bufferDirectory ?? "memory"])
        }
    }

    // MARK: - Sampling

    private func tick() {
        guard !stopping else { return }
        var sample = sampler.sample(seq: nextSeq)
        // Self-metrics ride with the data, so a gap the buffer's bounds caused shows next to it.
        sample.add("agent_buffer_samples", Double(queue.count))
        sample.add("agent_buffer_dropped_total", Double(queue.dropped))
        if tooLarge > 0 { sample.add("agent_samples_too_large_total", Double(tooLarge)) }
        queue.append(sample)
        nextSeq = min(nextSeq + 1, SampleBuffer.maxSeq)
        // A full buffer drops a sample per interval: said at once, then at most once a minute.
        let now = Clock.monotonicNanos()
        if queue.dropped > reportedDropped && (lastDropReportNs == 0 || now - lastDropReportNs >= 60_000_000_000) {
            if config.bufferDirectory == nil {
                Log.warning("buffer_full", ["capacity": config.bufferCapacity, "max_bytes": config.bufferMaxBytes,
                                            "dropped": queue.dropped - reportedDropped, "dropped_total": queue.dropped])
            }
            reportedDropped = queue.dropped
            lastDropReportNs = now
        }
        queue.sync()
        pump()
        reactor.schedule(afterNanos: config.intervalNs) { [weak self] in self?.tick() }
    }

    // MARK: - Connection

    /// Starts at the first server, so the agent returns to it whenever it is back.
    private func startRound() {
        serverIndex = 0
        resolveAndConnect()
    }

    private func resolveAndConnect() {
        guard !stopping else { return }
        let server = config.servers[serverIndex]
        do {
            addresses = try server.resolve()
        } catch {
            Log.warning("resolve_failed", ["server": server, "error": error])
            addresses = []
        }
        addressIndex = 0
        connectNext()
    }

    /// Tries the next address of this server, then the next server; after the last, backs off.
    private func connectNext() {
        guard !stopping else { return }
        while addressIndex < addresses.count {
            let address = addresses[addressIndex]
            addressIndex += 1
            if attempt(address) { return }
        }
        if serverIndex + 1 < config.servers.count {
            serverIndex += 1
            return resolveAndConnect()
        }
        scheduleReconnect()
    }

    private func attempt(_ address: ResolvedAddress) -> Bool {
        peer = "\(config.servers[serverIndex]) (\(address))"
        do {
            fd = try Socket.connect(address)
            try? Socket.setNoDelay(fd)
            decoder = FrameDecoder()
            output = Preface.bytes
            outputOffset = 0
            encoder.appendFrame(.hello(Hello(nodeID: config.nodeID, agentVersion: Self.version, labels: config.labels,
                                             authToken: config.token, streamID: 1, instanceID: config.instanceID)), to: &output)
            try reactor.register(fd, events: [.readable, .writable], handler: self)
        } catch {
            Log.warning("connect_failed", ["server": peer, "error": error])
            if fd >= 0 { Socket.close(fd); fd = -1 }
            return false
        }
        generation += 1
        let current = generation
        reactor.schedule(afterNanos: config.connectTimeoutNs) { [weak self] in
            guard let self, self.generation == current, self.fd >= 0, !self.connected else { return }
            Log.warning("connect_failed", ["server": self.peer, "error": "no answer in \(self.config.connectTimeoutNs / 1_000_000) ms"])
            self.abandon()
        }
        reactor.schedule(afterNanos: config.welcomeTimeoutNs) { [weak self] in
            guard let self, self.generation == current, self.fd >= 0, self.connected, !self.welcomed else { return }
            Log.warning("no_welcome", ["server": self.peer, "note": "the server accepted the connection but never answered Hello"])
            self.drop()
        }
        return true
    }

    public func handleEvents(_ events: IOEvents) {
        if !connected && events.contains(.writable) {
            if let error = Socket.pendingError(fd) {
                Log.warning("connect_failed", ["server": peer, "error": error])
                return abandon()
            }
            connected = true
            Log.info("connected", ["server": peer])
            if let context = config.tls {
                do {
                    session = try TLSSession(context: context, fd: fd,
                                             serverName: config.tlsServerName ?? config.servers[serverIndex].host,
                                             resuming: resumable[serverIndex])
                } catch {
                    Log.error("tls_failed", ["server": peer, "error": error])
                    return abandon()
                }
            }
        }
        if let session, !session.isEstablished {
            return handshake(session)
        }
        if !events.isDisjoint(with: [.readable, .hangup, .error]) { read() }
        if fd >= 0 && events.contains(.writable) { flush() }
    }

    /// Advances the TLS handshake; a failure names OpenSSL's reason (unknown CA, expired,
    /// wrong name, a server that does not speak TLS) and counts as a failed attempt.
    private func handshake(_ session: TLSSession) {
        do {
            if let need = try session.handshake() {
                tlsNeed = need
                try? reactor.modify(fd, events: need == .readable ? .readable : .writable)
                return
            }
        } catch {
            let plain = "\(error)".contains("wrong version number") || "\(error)".contains("packet length too long")
            if plain {
                Log.error("tls_handshake_failed", ["server": peer, "error": error,
                                                   "hint": "the server answered without TLS: is its port plain TCP? (drop --tls, or start it with --tls-cert)"])
            } else {
                Log.error("tls_handshake_failed", ["server": peer, "error": error])
            }
            return abandon()
        }
        tlsNeed = nil
        if config.tlsInsecureSkipVerify {
            Log.warning("tls_established", ["server": peer, "version": session.version,
                                            "note": "the server was NOT verified (--tls-insecure-skip-verify)"])
        } else {
            Log.info("tls_established", ["server": peer, "version": session.version, "resumed": session.resumed])
        }
        flush()
    }

    /// One read, through TLS when there is a session.
    private func transportRead(_ buffer: UnsafeMutableRawBufferPointer) throws -> IOResult<Int> {
        guard let session else { return try Socket.read(fd, into: buffer) }
        switch try session.read(into: buffer) {
        case .done(let count): tlsNeed = nil; return .done(count)
        case .blocked(let need): tlsNeed = need == .writable ? .writable : nil; return .wouldBlock
        }
    }

    /// One write, through TLS when there is a session.
    private func transportWrite(_ bytes: UnsafeRawBufferPointer) throws -> IOResult<Int> {
        guard let session else { return try Socket.write(fd, bytes) }
        switch try session.write(bytes) {
        case .done(let count): return .done(count)
        case .blocked(let need): tlsNeed = need == .readable ? .readable : nil; return .wouldBlock
        }
    }

    private func read() {
        var chunk = [UInt8](repeating: 0, count: 16 * 1024)
        while fd >= 0 {
            let result: IOResult<Int>
            do { result = try chunk.withUnsafeMutableBytes { try transportRead($0) } } catch {
                Log.warning("connection_lost", ["server": peer, "error": error])
                return drop()
            }
            guard case .done(let count) = result else { break }
            if count == 0 {
                Log.warning("connection_lost", ["server": peer, "reason": "server closed the connection"])
                return drop()
            }
            do {
                try chunk.withUnsafeBytes { raw in
                    try decoder.decode(UnsafeRawBufferPointer(rebasing: raw[..<count])) { handle(try messageDecoder.decode($0)) }
                }
            } catch {
                Log.warning("bad_server_data", ["server": peer, "error": error])
                return drop()
            }
        }
        pump()
    }

    private func handle(_ message: Message) {
        switch message {
        case .welcome(let welcome):
            guard !welcomed else { return }
            if !queue.numbered {
                // A fresh queue: continue the server's numbering for this node.
                guard let last = queue.renumber(after: welcome.durableSeq) else {
                    Log.error("bad_welcome", ["durable_seq": welcome.durableSeq,
                                              "note": "the server's seq for this node leaves no room to number on; not continuing it"])
                    return drop()
                }
                nextSeq = last + 1
            } else {
                queue.acknowledge(welcome.durableSeq)
            }
            queue.resendAll()
            welcomed = true
            serverFrameLimit = welcome.limits.map { Int($0.maxFrameBytes) }.flatMap { $0 > 0 ? $0 : nil } ?? FrameFormat.defaultMaxFrameSize
            Log.info("welcomed", ["server": peer, "server_id": welcome.serverID, "durable_seq": welcome.durableSeq, "resending": queue.count])
            if serverIndex > 0 { scheduleFailback() }
        case .ack(let ack):
            let before = queue.count
            queue.acknowledge(ack.durableSeq)
            acked += UInt64(max(0, before - queue.count))
            // A server that acknowledges works: from here a lost connection retries quickly.
            failures = 0
            ackedHere = true
            restartWatchUntilNs = 0
            for verdict in ack.anomalies.prefix(Self.maxAnomalyLinesPerAck) {
                Log.warning("anomaly", ["node": config.nodeID, "seq": verdict.seq, "score": verdict.score])
            }
            if ack.anomalies.count > Self.maxAnomalyLinesPerAck {
                let rest = ack.anomalies.dropFirst(Self.maxAnomalyLinesPerAck)
                Log.warning("anomalies_not_logged", ["node": config.nodeID, "count": rest.count,
                                                     "last_seq": rest.map(\.seq).max() ?? 0,
                                                     "highest_score": rest.map(\.score).max() ?? 0])
            }
            if stopping && queue.count == 0 { finish() }
        case .ping(let ping):
            encoder.appendFrame(.pong(Pong(nonce: ping.nonce)), to: &output)
        case .error(let error):
            if error.code == .alreadyExists {
                // Another machine streams this node id: waiting longer lets an operator see it.
                Log.error("node_id_conflict", ["node": config.nodeID, "server": peer, "message": error.message])
                failures = max(failures, 6)
            } else {
                Log.error("server_error", ["server": peer, "code": error.code, "message": error.message])
            }
        case .goodbye(let goodbye):
            Log.info("server_goodbye", ["server": peer, "reason": goodbye.reason])
            // A clean restart: the server will be back shortly, so look for it often rather
            // than on the growing backoff (agents took up to 26 s to return: issue #18, item 5).
            // Only from a server that worked (acknowledged): one that says Goodbye right after
            // Welcome, again and again, keeps the growing backoff.
            if !stopping && ackedHere { restartWatchUntilNs = Clock.monotonicNanos() + Self.restartWatchNs }
        case .hello, .samples, .pong:
            break
        }
    }

    private func pump() {
        guard welcomed, fd >= 0 else { return }
        while output.count - outputOffset < 256 * 1024 {
            let batch = queue.takeUnsent(max: Self.maxBatch)
            if batch.isEmpty { break }
            appendBatch(batch[...])
        }
        flush()
    }

    /// Frames `samples`, halving the batch until each frame fits the server's frame limit
    /// (Welcome's `max_frame_bytes`): a batch of large samples (a full textfile directory) once
    /// made a frame the server refused, and the resend after reconnecting was refused again,
    /// for ever. A single sample past the limit cannot be sent: it is skipped, counted and
    /// logged (the acks of the samples after it retire it from the buffer).
    private func appendBatch(_ samples: ArraySlice<Sample>) {
        let added = encoder.appendFrame(.samples(SampleBatch(streamID: 1, samples: Array(samples))), to: &output)
        guard added - FrameFormat.headerSize > serverFrameLimit else { return }
        output.removeLast(added)
        guard samples.count > 1 else {
            tooLarge += 1
            Log.error("sample_too_large", ["seq": samples.first?.seq ?? 0, "bytes": added - FrameFormat.headerSize,
                                           "server_limit": serverFrameLimit, "skipped_total": tooLarge])
            return
        }
        let middle = samples.startIndex + samples.count / 2
        appendBatch(samples[..<middle])
        appendBatch(samples[middle...])
    }

    private func flush() {
        while fd >= 0 && outputOffset < output.count {
            let result: IOResult<Int>
            do {
                result = try output.withUnsafeBytes { try transportWrite(UnsafeRawBufferPointer(rebasing: $0[outputOffset...])) }
            } catch {
                Log.warning("connection_lost", ["server": peer, "error": error])
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
        if let session, !session.isEstablished { return }  // the handshake sets the interest
        try? reactor.modify(fd, events: output.isEmpty && connected && tlsNeed != .writable ? .readable : [.readable, .writable])
    }

    private func closeSocket() {
        guard fd >= 0 else { return }
        if let session, session.isEstablished {
            if let saved = session.savedSession() { resumable[serverIndex] = saved }
            session.close()
        }
        session = nil
        tlsNeed = nil
        reactor.unregister(fd)
        Socket.close(fd)
        fd = -1
        connected = false
        welcomed = false
        ackedHere = false
        generation += 1
    }

    /// This attempt failed before a connection stood: try the next address or server.
    private func abandon() {
        closeSocket()
        if stopping { return finish() }
        connectNext()
    }


    /// An established connection ended. If the server never acknowledged anything (no
    /// Welcome, a hang-up after it, garbage), this server counts as failed and the round goes
    /// on to the next one, so a broken first server cannot keep the agent from a working
    /// second; otherwise start over at the first server after a backoff.
    private func drop() {
        guard fd >= 0 else { return }
        let worked = ackedHere
        closeSocket()
        if stopping { return finish() }
        if worked { scheduleReconnect() } else { connectNext() }
    }

    /// After a server's Goodbye, how long the agent retries on a short fixed interval.
    static let restartWatchNs: UInt64 = 60_000_000_000
    /// Until when (monotonic ns) a Goodbye keeps the retries short; 0 = not watching.
    private var restartWatchUntilNs: UInt64 = 0

    private func scheduleReconnect() {
        failures += 1
        // Capped exponential backoff with full jitter (AWS Architecture Blog, "Exponential
        // Backoff And Jitter"), so a restarted server is not hit by the whole fleet at once.
        var cap = min(UInt64(30_000_000_000), UInt64(250_000_000) << UInt64(min(failures, 8)))
        if Clock.monotonicNanos() < restartWatchUntilNs {
            // The server said Goodbye: a restart. Every second (jittered) for a minute.
            cap = min(cap, 1_000_000_000)
        } else {
            restartWatchUntilNs = 0
        }
        let delay = UInt64.random(in: 0...cap, using: &random)
        Log.info("reconnecting", ["in_ms": delay / 1_000_000, "attempt": failures, "buffered": queue.count])
        reactor.schedule(afterNanos: delay) { [weak self] in self?.startRound() }
    }

    /// On a fallback server: after `failbackNs`, leave it for the first server (if the first
    /// is still down, the round falls through to this one again; nothing unacknowledged is lost).
    private func scheduleFailback() {
        let current = generation
        reactor.schedule(afterNanos: config.failbackNs) { [weak self] in
            guard let self, self.generation == current, self.welcomed, self.serverIndex > 0, !self.stopping else { return }
            Log.info("failback", ["from": self.peer, "to": self.config.servers[0]])
            self.encoder.appendFrame(.goodbye(Goodbye(reason: "agent returning to its first server")), to: &self.output)
            self.flush()
            self.closeSocket()
            self.startRound()
        }
    }

    // MARK: - Shutdown

    private func beginShutdown() {
        guard !stopping else { return }
        stopping = true
        Log.info("shutting_down", ["unacked": queue.count])
        if !welcomed || queue.count == 0 { return finish() }
        reactor.schedule(afterNanos: config.drainNs) { [weak self] in self?.finish() }
    }

    private var finished = false

    private func finish() {
        guard !finished else { return }
        finished = true
        if fd >= 0 {
            encoder.appendFrame(.goodbye(Goodbye(reason: "agent shutting down")), to: &output)
            flush()
            closeSocket()
        }
        reactor.handle.stop()
    }
}
