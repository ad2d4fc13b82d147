import Glibc
import GridMonPosix
import GridMonTLS
import GridMonWire

/// One agent connection on a reactor: socket bytes → `FrameDecoder` → `ServerSession`, and
/// the session's replies → a bounded output buffer → socket.
///
/// Backpressure: while more than `ServerConfig.maxOutputBytes` wait to be written (a peer that does
/// not read its acks), the connection stops reading, so it cannot make the server buffer
/// without bound; keepalive then closes it if it stays silent.
/// With TLS (`--tls-cert`), the same bytes run inside a `TLSSession`: the handshake first
/// (bounded by the handshake timeout, as a Hello is), then reads and writes through it; what
/// OpenSSL needs from the socket (readable, writable) becomes the reactor's interest.
/// Threading: confined to its reactor's thread. Ownership: owns `fd` and closes it.
final class ServerConnection: EventHandler {
    let fd: Int32
    let peer: SocketAddress
    let session: ServerSession
    let acceptedAtNs: UInt64
    var lastInputNs: UInt64
    var pingSentNs: UInt64 = 0
    private unowned let server: Worker
    private var decoder: FrameDecoder
    private var output: [UInt8] = []
    private var outputOffset = 0
    private var watching: IOEvents = .readable
    private(set) var isClosed = false
    /// Counted in the server's unauthenticated connections (until its first stream opens).
    private var unauthenticated = true
    /// Bytes of a half-read frame this connection holds in the shared pre-auth budget.
    private var preAuthHeld = 0
    /// When the frame being read began (monotonic ns), or nil at a frame boundary. Only runs
    /// while the server reads this connection: paused by backpressure, the peer is not late.
    private(set) var frameStartedNs: UInt64?
    /// Whether the server reads this connection now (EPOLLIN on).
    var isReading: Bool { watching.contains(.readable) }

    /// Reads per readiness event before yielding to other connections (fairness).
    private static let readsPerEvent = 4
    /// The TLS session, when the port speaks TLS.
    private var tls: TLSSession?
    /// Whether the first bytes were looked at (a plain GridMon agent on the TLS port is told
    /// so in its own protocol, instead of a reset it cannot explain).
    private var sniffed = false
    /// A read is scheduled for the reactor's next turn (`readAgainIfTLSHoldsBytes`).
    private var readScheduled = false
    /// What the TLS session last needed from the socket that the plain logic would not ask
    /// for (a read that must write, during the handshake or a key update).
    private var tlsNeed: TLSSession.Need?

    init(fd: Int32, peer: SocketAddress, server: Worker, session: ServerSession, maxFrameBytes: Int, tls: TLSSession? = nil) {
        self.fd = fd
        self.tls = tls
        self.peer = peer
        self.server = server
        self.session = session
        // Until a stream opens, frames are capped small (issue #10, defect 5); raised after.
        self.decoder = FrameDecoder(maxFrameSize: min(maxFrameBytes, server.shared.config.preAuthMaxFrameBytes))
        self.acceptedAtNs = Clock.monotonicNanos()
        self.lastInputNs = acceptedAtNs
        output.append(contentsOf: Preface.bytes)
        session.onUnpromptedOutput = { [unowned self] in self.sendOutgoing() }
        session.peer = "\(peer)"
        session.onViolation = { [unowned self] reason, detail in
            if let detail {
                self.server.shared.limitLog.note(reason, ["peer": self.peer, "detail": detail])
            } else {
                self.server.shared.limitLog.note(reason, ["peer": self.peer])
            }
        }
    }

    var pendingOutput: Int { output.count - outputOffset }

    func handleEvents(_ events: IOEvents) {
        if lingering { return discardUntilPeerCloses() }
        if let tls, !tls.isEstablished {
            if !sniffed && events.contains(.readable) && sniffPlainAgent() { return }
            return handshake(tls)
        }
        if !events.isDisjoint(with: [.readable, .hangup, .error]) && (watching.contains(.readable) || tlsNeed != nil) { readAvailable() }
        if !isClosed && events.contains(.writable) { flush() }
    }

    /// Peeks at the first byte: "G" (the GridMon preface) instead of a TLS record (0x16) is a
    /// plain agent. It gets a plain `Error` naming the fix, and the connection closes.
    /// True when the connection was handled here (a plain agent, or nothing to look at yet:
    /// then the next readable event looks again rather than take the peer for a TLS one).
    private func sniffPlainAgent() -> Bool {
        var first: UInt8 = 0
        let peeked = recv(fd, &first, 1, Int32(MSG_PEEK | MSG_DONTWAIT))
        if peeked < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) { return true }
        sniffed = true
        guard peeked == 1, first == Preface.bytes[0] else { return false }
        tls = nil
        server.stats.violation("plain_on_tls_port")
        server.shared.limitLog.note("plain_on_tls_port", ["peer": peer])
        session.fail(.unavailable, "this port speaks TLS: start the agent with --tls", reason: "plain_on_tls_port")
        sendOutgoing()
        return true
    }

    /// Advances the TLS handshake; once done, reads what came with it and writes the preface.
    private func handshake(_ tls: TLSSession) {
        do {
            if let need = try tls.handshake() {
                tlsNeed = need
                return updateInterest()
            }
        } catch {
            server.stats.violation("tls_handshake_failed")
            server.shared.limitLog.note("tls_handshake_failed", ["peer": peer, "error": error])
            return close()
        }
        tlsNeed = nil
        if server.shared.config.tlsTenantFromCertificate {
            // Verified against --tls-client-ca during the handshake (required there).
            guard let name = tls.peerCommonName, !name.isEmpty else {
                session.fail(.unauthenticated, "the client certificate names no tenant (subject CN)", reason: "no_certificate_tenant")
                return sendOutgoing()
            }
            session.certificateTenant = name
        }
        Log.debug("tls_established", ["peer": peer, "version": tls.version, "resumed": tls.resumed])
        readAvailable()
        if !isClosed { flush() }
    }

    /// One read from the socket, through TLS when there is a session.
    private func transportRead() throws -> IOResult<Int> {
        guard let tls else { return try Socket.read(fd, into: server.readBuffer) }
        switch try tls.read(into: server.readBuffer) {
        case .done(let count):
            tlsNeed = nil
            return .done(count)
        case .blocked(let need):
            tlsNeed = need == .writable ? .writable : nil
            return .wouldBlock
        }
    }

    /// One write to the socket, through TLS when there is a session.
    private func transportWrite(_ bytes: UnsafeRawBufferPointer) throws -> IOResult<Int> {
        guard let tls else { return try Socket.write(fd, bytes) }
        switch try tls.write(bytes) {
        case .done(let count): return .done(count)
        case .blocked(let need):
            tlsNeed = need == .readable ? .readable : nil
            return .wouldBlock
        }
    }

    /// Queues the session's messages and writes what the socket takes.
    func sendOutgoing() {
        guard !lingering else { _ = session.takeOutgoing(); return }
        for message in session.takeOutgoing() {
            server.encoder.appendFrame(message, to: &output)
            server.stats.framesOut.add()
        }
        flush()
    }

    /// Set once the last frame (a Goodbye or an Error) is out: the connection only waits for
    /// the peer's end.
    private var lingering = false
    /// How long a closing connection waits for the peer to close its side.
    private static let lingerNs: UInt64 = 2_000_000_000

    /// Ends a connection whose last frame was written: a FIN after it, then what the peer
    /// still sends is read and dropped until it closes (at most `lingerNs`). Closing at once
    /// with unread input makes the kernel send an RST, which can destroy the Goodbye or Error
    /// still unread in the peer's buffer (an agent under load missed the server's Goodbye
    /// and backed off as from a crash). The connection leaves the server's accounting now;
    /// only its descriptor lingers, and only while fewer than `Worker.maxLingering` do.
    private func closeAfterFlush() {
        guard !isClosed, !lingering else { return }
        guard server.lingering < Worker.maxLingering else { return close() }
        lingering = true
        // Leave the accounting before the FIN: a peer that sees it may connect again at once,
        // and another worker's accept must not still count this connection against
        // --max-connections (a CI run had the reconnect refused).
        leavePreAuth()
        session.closed(nowNs: Clock.unixNanos())
        server.connectionReleased(self, lingers: true)
        if let tls, tls.isEstablished { tls.close() }
        _ = Glibc.shutdown(fd, Int32(SHUT_WR))
        if watching != .readable {
            do { try server.reactor.modify(fd, events: .readable); watching = .readable } catch { return close() }
        }
        _ = server.reactor.schedule(afterNanos: Self.lingerNs) { [weak self] in self?.close() }
        discardUntilPeerCloses()
    }

    private func discardUntilPeerCloses() {
        var scratch = [UInt8](repeating: 0, count: 16 * 1024)
        for _ in 0..<64 {
            let result = scratch.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if result > 0 { continue }
            if result < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) { return }
            return close()  // the peer's FIN (0) or an error: done
        }
    }

    /// Closes at once, without flushing.
    func close() {
        guard !isClosed else { return }
        isClosed = true
        if !lingering {
            if let tls, tls.isEstablished { tls.close() }
            leavePreAuth()
            session.closed(nowNs: Clock.unixNanos())
            server.connectionReleased(self, lingers: false)
        }
        server.connectionClosed(self, lingered: lingering)
        Socket.close(fd)
    }

    private func readAvailable() {
        let nowNs = Clock.unixNanos()
        for _ in 0..<Self.readsPerEvent {
            let result: IOResult<Int>
            do {
                result = try transportRead()
            } catch {
                Log.debug("read_failed", ["peer": peer, "error": error])
                return close()
            }
            guard case .done(let count) = result else { break }
            if count == 0 {
                do { try decoder.finish() } catch let error as WireError { server.stats.decodeError(error.kind) } catch {}
                return close()
            }
            lastInputNs = Clock.monotonicNanos()
            server.stats.bytesIn.add(UInt64(count))
            let frames = decode(UnsafeRawBufferPointer(rebasing: server.readBuffer[..<count]), nowNs: nowNs)
            if decoder.isAtFrameBoundary || decoder.hasFailed {
                frameStartedNs = nil
            } else if frameStartedNs == nil || frames > 0 {
                // The half-read frame began in this read (a frame before it completed): a peer
                // streaming back to back is never late, however rarely a read ends on a boundary.
                frameStartedNs = lastInputNs
            }
            if unauthenticated && !accountPreAuth() { break }
            // Checked per read, not per event: a sink that refuses samples (failing commits)
            // takes at most one more read buffer of them.
            server.checkSinkPressure()
            if server.readingPaused { break }
            // A short read drained the socket; over TLS, decrypted bytes may wait in OpenSSL
            // where no readiness event will announce them.
            if session.closeReason != nil || (count < server.readBuffer.count && !(tls?.hasPending ?? false)) { break }
        }
        readAgainIfTLSHoldsBytes()
        session.flushAcks()
        sendOutgoing()
        server.noteAwaitingAcks(self)
    }

    /// Bytes OpenSSL already read from the socket raise no epoll event: when the read loop
    /// yields (fairness) or reading resumes after backpressure with such bytes held, read
    /// again from the reactor's next turn instead of stalling until the peer sends more.
    private func readAgainIfTLSHoldsBytes() {
        guard let tls, tls.isEstablished, tls.hasPending, !readScheduled, !isClosed,
              session.closeReason == nil, watching.contains(.readable) else { return }
        readScheduled = true
        server.reactor.schedule(afterNanos: 0) { [weak self] in
            guard let self, !self.isClosed else { return }
            self.readScheduled = false
            if self.watching.contains(.readable) { self.readAvailable() }
        }
    }

    /// Whether the peer has authenticated: its first stream is open. Then it gets the full
    /// frame size and leaves the pre-auth accounting.
    private func noteAuthenticated() {
        guard unauthenticated, session.hasOpenedStream else { return }
        leavePreAuth()
        decoder.maxFrameSize = server.shared.config.session.maxFrameBytes
    }

    private func leavePreAuth() {
        guard unauthenticated else { return }
        unauthenticated = false
        server.shared.leaveUnauthenticated(peer.host)
        if preAuthHeld > 0 { _ = server.shared.preAuthBytes.wrappingSubtract(preAuthHeld, ordering: .relaxed) }
        preAuthHeld = 0
    }

    /// Moves this connection's half-read bytes into the shared pre-auth budget; past the
    /// budget the connection is failed (false).
    private func accountPreAuth() -> Bool {
        let held = decoder.bufferedBytes
        let delta = held - preAuthHeld
        preAuthHeld = held
        let total = server.shared.preAuthBytes.wrappingAdd(delta, ordering: .relaxed).newValue
        guard delta > 0, total > server.shared.config.preAuthBudgetBytes else { return true }
        session.fail(.resourceExhausted, "the server holds too many unauthenticated bytes; send Hello first",
                     reason: "pre_auth_budget")
        return false
    }

    /// Decodes one read's bytes into the session; returns the frames it completed.
    private func decode(_ chunk: UnsafeRawBufferPointer, nowNs: Int64) -> Int {
        struct Stop: Error {}
        var frames = 0
        do {
            var offset = 0
            while offset < chunk.count {
                offset += try decoder.decode(UnsafeRawBufferPointer(rebasing: chunk[offset...])) { payload in
                    server.stats.framesIn.add()
                    frames += 1
                    session.receive(try server.messageDecoder.decode(payload), nowNs: nowNs)
                    if session.closeReason != nil { throw Stop() }
                    // Authenticated: the next frames may be full size (set between frames).
                    if unauthenticated && session.hasOpenedStream { throw FrameDecoder.Pause() }
                }
                noteAuthenticated()
            }
        } catch let error as WireError {
            server.stats.decodeError(error.kind)
            Log.info("bad_input", ["peer": peer, "kind": error.kind, "error": error])
            let code: StatusCode = switch error {
            case .oversizeFrame, .decodesTooLarge: .resourceExhausted
            case .unknownBody, .unsupportedVersion: .unimplemented
            default: .invalidArgument
            }
            session.fail(code, error.description, reason: error.kind)
        } catch {
            // Stop: the session decided to close; its reason is logged on close.
        }
        return frames
    }

    private func flush() {
        guard !lingering, !isClosed else { return }
        // Nothing goes out before the handshake is done (`handshake` flushes then): an SSL_write
        // now would run the handshake itself, and a plain agent's bytes already read would end
        // it as a write error, without the Error that names the fix (a CI flake under load).
        if let tls, !tls.isEstablished { return }
        while outputOffset < output.count {
            let result: IOResult<Int>
            do {
                result = try output.withUnsafeBytes { try transportWrite(UnsafeRawBufferPointer(rebasing: $0[outputOffset...])) }
            } catch {
                Log.debug("write_failed", ["peer": peer, "error": error])
                return close()
            }
            guard case .done(let written) = result else { break }
            outputOffset += written
            server.stats.bytesOut.add(UInt64(written))
        }
        if outputOffset == output.count {
            output.removeAll(keepingCapacity: output.capacity <= 256 * 1024)
            outputOffset = 0
            if let reason = session.closeReason {
                Log.debug("connection_closed", ["peer": peer, "reason": reason])
                return closeAfterFlush()
            }
        }
        updateInterest()
    }

    /// Watch writability while output is pending; stop reading while too much is, or while
    /// the worker holds all reading back (sink backpressure).
    func updateInterest() {
        guard !isClosed, !lingering else { return }
        var wanted: IOEvents = []
        if let tls, !tls.isEstablished {
            wanted = tlsNeed == .writable ? .writable : .readable
            if wanted != watching {
                do { try server.reactor.modify(fd, events: wanted); watching = wanted } catch { close() }
            }
            return
        }
        if tlsNeed == .writable { wanted.insert(.writable) }
        if tlsNeed == .readable { wanted.insert(.readable) }
        if pendingOutput > 0 { wanted.insert(.writable) }
        if session.closeReason == nil && pendingOutput <= server.maxOutputBytes && !server.readingPaused {
            wanted.insert(.readable)
        }
        if pendingOutput > server.maxOutputBytes && watching.contains(.readable) {
            server.stats.violation("output_buffer_full")
            server.shared.limitLog.note("output_buffer_full", ["peer": peer, "queued_bytes": pendingOutput])
        }
        guard wanted != watching else { return }
        do {
            try server.reactor.modify(fd, events: wanted)
            // Reading again after a pause: the frame deadline starts over from now.
            if wanted.contains(.readable) && !watching.contains(.readable) && frameStartedNs != nil {
                frameStartedNs = Clock.monotonicNanos()
            }
            let resumed = wanted.contains(.readable) && !watching.contains(.readable)
            watching = wanted
            if resumed { readAgainIfTLSHoldsBytes() }
        } catch {
            close()
        }
    }
}
