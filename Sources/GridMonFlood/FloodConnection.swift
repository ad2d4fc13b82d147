import GridMonCore
import GridMonPosix
import GridMonTLS
import GridMonWire

/// One simulated node stream on a flood connection.
struct FloodStream {
    let id: UInt32
    let node: String
    var nextSeq: UInt64 = 1
    var durableSeq: UInt64 = 0
    var welcomed = false
    /// Frames sent and not yet acked: (last seq in the frame, sent at, samples in it).
    var inFlight: [(lastSeq: UInt64, sentNs: UInt64, count: Int)] = []
    var inFlightHead = 0
    /// Samples this stream may send now in paced mode (credits added by the pacing timer).
    var credits: Double = 0

    var unacked: UInt64 { nextSeq - 1 - durableSeq }
}

/// One TCP connection of the flood client, carrying `streams` (multiplexed like a relay).
///
/// Survives the server going away: on a close it reconnects with capped exponential backoff
/// and jitter, says Hello again, and resumes each stream from the `Welcome`'s durable seq,
/// resending what was not acked. Threading: confined to the flood reactor's thread.
final class FloodConnection: EventHandler {
    private unowned let run: FloodRun
    private(set) var fd: Int32 = -1
    private(set) var streams: [FloodStream]
    private var decoder = FrameDecoder()
    private var output: [UInt8] = []
    private var outputOffset = 0
    private var connected = false
    private var watching: IOEvents = []
    private var nextStream = 0
    private var failures = 0
    private let readBufferSize = 64 * 1024
    /// The TLS session (with `config.tls`).
    private var session: TLSSession?
    private var handshakeStartNs: UInt64 = 0

    /// Output kept queued before the pump waits for the socket (bounded memory per connection).
    private static let outputHighWater = 256 * 1024

    init(run: FloodRun, streams: [FloodStream]) {
        self.run = run
        self.streams = streams
    }

    var isConnected: Bool { connected }

    func connect() {
        do {
            fd = try Socket.connect(run.config.target)
            try? Socket.setNoDelay(fd)
            decoder = FrameDecoder()
            output = Preface.bytes
            outputOffset = 0
            for i in streams.indices {
                streams[i].welcomed = false
                run.encoder.appendFrame(.hello(Hello(nodeID: streams[i].node, agentVersion: "gridmon-flood/" + BuildInfo.version,
                                                     authToken: run.config.authToken, streamID: streams[i].id)), to: &output)
            }
            watching = [.readable, .writable]
            try run.reactor.register(fd, events: watching, handler: self)
        } catch {
            run.stats.error("connect")
            scheduleReconnect()
        }
    }

    func handleEvents(_ events: IOEvents) {
        if !connected && events.contains(.writable) {
            if let error = Socket.pendingError(fd) {
                Log.debug("connect_failed", ["error": error])
                run.stats.error("connect")
                return drop()
            }
            connected = true
            failures = 0
            run.stats.connectionsUp += 1
            if let context = run.config.tls {
                do {
                    session = try TLSSession(context: context, fd: fd, serverName: run.config.tlsServerName ?? run.config.target.host)
                    handshakeStartNs = Clock.monotonicNanos()
                } catch {
                    Log.warning("tls_failed", ["error": error])
                    run.stats.error("tls")
                    return drop()
                }
            }
        }
        if let session, !session.isEstablished {
            do {
                if let need = try session.handshake() {
                    let wanted: IOEvents = need == .readable ? .readable : .writable
                    if wanted != watching { try? run.reactor.modify(fd, events: wanted); watching = wanted }
                    return
                }
            } catch {
                Log.warning("tls_handshake_failed", ["error": error])
                run.stats.error("tls")
                return drop()
            }
            run.stats.tlsHandshake(Clock.monotonicNanos() - handshakeStartNs)
            flush()
            return
        }
        if !events.isDisjoint(with: [.readable, .hangup, .error]) { read() }
        if fd >= 0 && events.contains(.writable) { pump() }
    }

    private func transportRead(_ buffer: UnsafeMutableRawBufferPointer) throws -> IOResult<Int> {
        guard let session else { return try Socket.read(fd, into: buffer) }
        if case .done(let n) = try session.read(into: buffer) { return .done(n) }
        return .wouldBlock
    }

    private func transportWrite(_ bytes: UnsafeRawBufferPointer) throws -> IOResult<Int> {
        guard let session else { return try Socket.write(fd, bytes) }
        if case .done(let n) = try session.write(bytes) { return .done(n) }
        return .wouldBlock
    }

    /// Queues batches while streams have samples to send and the socket keeps up.
    /// Fills the output up to its high-water mark and writes it, again and again while the
    /// socket takes everything and streams may send: a large window is kept full even when
    /// acks come back slowly (a server that acks after each group commit).
    func pump() {
        guard connected, fd >= 0 else { return }
        while true {
            var idle = 0
            var queued = false
            while output.count - outputOffset < Self.outputHighWater && idle < streams.count && !run.sendingStopped {
                let i = nextStream
                nextStream = (nextStream + 1) % streams.count
                guard let count = sendable(i) else { idle += 1; continue }
                idle = 0
                queued = true
                let first = streams[i].nextSeq
                let samples = (0..<UInt64(count)).map { run.workload(streams[i].node, first + $0) }
                run.encoder.appendFrame(.samples(SampleBatch(streamID: streams[i].id, samples: samples)), to: &output)
                streams[i].nextSeq += UInt64(count)
                streams[i].inFlight.append((first + UInt64(count) - 1, Clock.monotonicNanos(), count))
                if run.config.ratePerStream != nil { streams[i].credits -= Double(count) }
                run.sent(samples: count)
            }
            flush()
            // Go round again only if all of it went out and there was more to send.
            guard queued, fd >= 0, output.isEmpty else { return }
        }
    }

    /// How many samples stream `i` may send now, or nil.
    private func sendable(_ i: Int) -> Int? {
        let stream = streams[i]
        guard stream.welcomed, stream.unacked < UInt64(run.config.windowSamples) else { return nil }
        var count = min(run.config.batchSize, run.config.windowSamples - Int(stream.unacked))
        if run.config.ratePerStream != nil {
            guard stream.credits >= 1 else { return nil }
            count = min(count, Int(stream.credits))
        }
        count = min(count, run.budget)
        if let limit = run.perStreamLimit { count = min(count, Int(limit - min(limit, stream.nextSeq - 1))) }
        return count > 0 ? count : nil
    }

    /// Adds pacing credits (paced mode), capped so a stall does not turn into a burst.
    func addCredits(_ credits: Double) {
        for i in streams.indices {
            streams[i].credits = min(streams[i].credits + credits, Double(run.config.batchSize) * 2)
        }
        pump()
    }

    private func read() {
        var buffer = [UInt8](repeating: 0, count: readBufferSize)
        while fd >= 0 {
            let result: IOResult<Int>
            do { result = try buffer.withUnsafeMutableBytes { try transportRead($0) } } catch {
                run.stats.error("read")
                return drop()
            }
            guard case .done(let count) = result else { return }
            if count == 0 {
                run.stats.error("closed_by_server")
                return drop()
            }
            do {
                _ = try buffer.withUnsafeBytes { raw in
                    try decoder.decode(UnsafeRawBufferPointer(rebasing: raw[..<count])) { payload in
                        handle(try run.decoder.decode(payload))
                    }
                }
            } catch let error as WireError {
                run.stats.error(error.kind)
                return drop()
            } catch {
                return drop()
            }
            // A short read drained the socket; over TLS, records OpenSSL read ahead raise no
            // epoll event, so read on while it holds some.
            if count < readBufferSize && !(session?.hasPending ?? false) { break }
        }
        pump()
    }

    private func handle(_ message: Message) {
        switch message {
        case .welcome(let welcome):
            guard let i = streams.firstIndex(where: { $0.id == welcome.streamID }) else { return }
            streams[i].welcomed = true
            if welcome.durableSeq < streams[i].durableSeq {
                // The server forgot samples it had acknowledged: exactly what must never happen.
                run.stats.error("durable_seq_regressed")
            }
            // Resume after what the server holds; what was in flight above it is sent again.
            let resumeAfter = max(welcome.durableSeq, streams[i].durableSeq)
            run.unsent(samples: streams[i].nextSeq - 1 - min(resumeAfter, streams[i].nextSeq - 1))
            streams[i].durableSeq = resumeAfter
            streams[i].nextSeq = resumeAfter + 1
            streams[i].inFlight.removeAll()
            streams[i].inFlightHead = 0
        case .ack(let ack):
            guard let i = streams.firstIndex(where: { $0.id == ack.streamID }) else { return }
            acknowledge(i, ack)
        case .ping(let ping):
            run.encoder.appendFrame(.pong(Pong(nonce: ping.nonce)), to: &output)
        case .error(let error):
            run.stats.error(error.code.description)
        case .goodbye:
            run.stats.error("goodbye")
        case .hello, .samples, .pong:
            break
        }
    }

    private func acknowledge(_ i: Int, _ ack: Ack) {
        let now = Clock.monotonicNanos()
        var acked: UInt64 = 0
        let flagged = Set(ack.anomalies.map(\.seq))
        for verdict in ack.anomalies {
            run.anomaly(node: streams[i].node, seq: verdict.seq, score: verdict.score)
            // An Ack split by the server: its first part acknowledged (and counted) the samples.
            if verdict.seq <= streams[i].durableSeq { run.flaggedLate(node: streams[i].node, seq: verdict.seq) }
        }
        while streams[i].inFlightHead < streams[i].inFlight.count,
              streams[i].inFlight[streams[i].inFlightHead].lastSeq <= ack.durableSeq {
            let frame = streams[i].inFlight[streams[i].inFlightHead]
            run.recordLatency(sentNs: frame.sentNs, nanos: now - frame.sentNs, count: frame.count)
            acked += UInt64(frame.count)
            run.tally(node: streams[i].node, seqs: (frame.lastSeq + 1 - UInt64(frame.count))...frame.lastSeq, flagged: flagged)
            streams[i].inFlightHead += 1
        }
        if streams[i].inFlightHead > 1024 {
            streams[i].inFlight.removeFirst(streams[i].inFlightHead)
            streams[i].inFlightHead = 0
        }
        streams[i].durableSeq = max(streams[i].durableSeq, ack.durableSeq)
        run.acked(samples: acked, anomalies: ack.anomalies.count)
    }

    private func flush() {
        while outputOffset < output.count && fd >= 0 {
            let result: IOResult<Int>
            do {
                result = try output.withUnsafeBytes { try transportWrite(UnsafeRawBufferPointer(rebasing: $0[outputOffset...])) }
            } catch {
                run.stats.error("write")
                return drop()
            }
            guard case .done(let n) = result else { break }
            outputOffset += n
            run.stats.bytesSent += UInt64(n)
        }
        if outputOffset == output.count {
            output.removeAll(keepingCapacity: true)
            outputOffset = 0
        }
        if let session, !session.isEstablished { return }
        let wanted: IOEvents = output.count > outputOffset || !connected ? [.readable, .writable] : [.readable]
        if fd >= 0 && wanted != watching {
            try? run.reactor.modify(fd, events: wanted)
            watching = wanted
        }
    }

    /// The connection broke: close it; come back later unless the run is over.
    private func drop() {
        guard fd >= 0 else { return }
        close()
        scheduleReconnect()
    }

    private func scheduleReconnect() {
        guard !run.finished else { return }
        failures += 1
        run.stats.reconnects += 1
        // Capped exponential backoff with full jitter (AWS Architecture Blog, "Exponential
        // Backoff And Jitter"): a restarted server is not hit by every client at once.
        let capNs = min(UInt64(5_000_000_000), UInt64(100_000_000) << UInt64(min(failures, 6)))
        let delay = UInt64.random(in: capNs / 2...capNs, using: &run.random)
        run.reactor.schedule(afterNanos: delay) { [weak self] in self?.connect() }
    }

    /// Closes without reconnecting (end of run).
    func close() {
        guard fd >= 0 else { return }
        if let session, session.isEstablished { session.close() }
        session = nil
        run.reactor.unregister(fd)
        Socket.close(fd)
        fd = -1
        if connected { run.stats.connectionsUp -= 1 }
        connected = false
    }

    var unackedSamples: UInt64 { streams.reduce(0) { $0 + $1.unacked } }
}
