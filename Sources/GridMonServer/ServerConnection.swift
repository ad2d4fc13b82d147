import GridMonPosix
import GridMonWire

/// One agent connection on a reactor: socket bytes → `FrameDecoder` → `ServerSession`, and
/// the session's replies → a bounded output buffer → socket.
///
/// Backpressure: while more than `ServerConfig.maxOutputBytes` wait to be written (a peer that does
/// not read its acks), the connection stops reading, so it cannot make the server buffer
/// without bound; keepalive then closes it if it stays silent.
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

    init(fd: Int32, peer: SocketAddress, server: Worker, session: ServerSession, maxFrameBytes: Int) {
        self.fd = fd
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
        if !events.isDisjoint(with: [.readable, .hangup, .error]) && watching.contains(.readable) { readAvailable() }
        if !isClosed && events.contains(.writable) { flush() }
    }

    /// Queues the session's messages and writes what the socket takes.
    func sendOutgoing() {
        for message in session.takeOutgoing() {
            server.encoder.appendFrame(message, to: &output)
            server.stats.framesOut.add()
        }
        flush()
    }

    /// Closes at once, without flushing.
    func close() {
        guard !isClosed else { return }
        isClosed = true
        leavePreAuth()
        session.closed(nowNs: Clock.unixNanos())
        server.connectionClosed(self)
        Socket.close(fd)
    }

    private func readAvailable() {
        let nowNs = Clock.unixNanos()
        for _ in 0..<Self.readsPerEvent {
            let result: IOResult<Int>
            do {
                result = try Socket.read(fd, into: server.readBuffer)
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
            if session.closeReason != nil || count < server.readBuffer.count { break }
        }
        session.flushAcks()
        sendOutgoing()
        server.noteAwaitingAcks(self)
        server.checkSinkPressure()
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
                    session.receive(try Message(payload: payload), nowNs: nowNs)
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
            case .oversizeFrame: .resourceExhausted
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
        while outputOffset < output.count {
            let result: IOResult<Int>
            do {
                result = try output.withUnsafeBytes { try Socket.write(fd, UnsafeRawBufferPointer(rebasing: $0[outputOffset...])) }
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
                return close()
            }
        }
        updateInterest()
    }

    /// Watch writability while output is pending; stop reading while too much is, or while
    /// the worker holds all reading back (sink backpressure).
    func updateInterest() {
        guard !isClosed else { return }
        var wanted: IOEvents = []
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
            watching = wanted
        } catch {
            close()
        }
    }
}
