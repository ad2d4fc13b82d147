import GridMonCore
import GridMonDetect
import GridMonStore
import GridMonWire

/// Limits and identity one server applies to every connection.
public struct SessionConfig: Sendable {
    public var serverID: String = "gridmon"
    public var maxStreamsPerConnection: Int = 1024
    public var maxFrameBytes: Int = FrameFormat.defaultMaxFrameSize
    public var keepaliveIntervalMs: UInt32 = 15_000
    /// Largest step a stream's seq may take past its highest (issue #10, defect 3: one sample
    /// at 2^64−1 made every later sample of its node a "duplicate"). 2^24 is 194 days of
    /// samples at 1/s: far more than any agent's buffer drops in one gap.
    public var maxSeqJump: UInt64 = 1 << 24
    /// Largest seq a stream may start from (the server knows nothing of the node yet: an agent
    /// with a numbering of its own, a wiped data directory). Leaves 2^62 steps of headroom.
    public static let maxFirstSeq: UInt64 = 1 << 62
    /// Accepted sample times: from the Unix epoch to this far past the server's clock
    /// (negative and far-future times are broken clocks or hostile; InfluxDB refuses int64 min).
    public var maxFutureNs: Int64 = 7 * 86_400 * 1_000_000_000
    public init() {}
}

/// The protocol state of one agent connection, without any I/O: decoded messages go in,
/// messages to send and a close decision come out.
///
/// Flow: preface → `Hello` (authenticated) → `Welcome` → `SampleBatch`es, each acked.
/// Several node streams may share a connection. Acks are coalesced: `receive` only marks a
/// stream as due, and `flushAcks()` (called once per socket read) emits one cumulative `Ack`
/// per due stream with the verdicts gathered since the last one.
///
/// Threading: confined to the reactor thread that owns the connection.
public final class ServerSession {
    /// A class: mutated in place many times per read (a struct copied out of the dictionary
    /// would copy its pending array on every append).
    private final class Stream {
        let record: NodeRecord
        /// Node, tenant and labels, with their series key made once.
        let series: StreamSeries
        var tenant: String { series.tenant }
        /// The token that opened the stream: a reload that revokes it closes the stream.
        let token: String
        /// Samples accepted since the last flush, not yet scored or stored (scored together,
        /// so many small frames from one read cost one batch through the forest), as the
        /// frames brought them: an in-order batch's array is kept whole, shared with the
        /// decoded message, so a read of one frame (an agent's usual) copies no sample.
        var pending: [[Sample]] = []
        /// Highest seq accepted on this stream (stored or pending): the resend cut-off.
        var highestSeq: UInt64
        var pendingDuplicates: UInt64 = 0
        var lastSeenNs: Int64 = 0
        var verdicts: [Verdict] = []
        /// How this stream's latest samples were judged (sent in its acks).
        var detector: DetectorState = .unspecified
        var ackDue = false
        /// The sink ticket of this stream's latest stored samples.
        var ticket: UInt64 = 0
        /// Acks of this stream waiting for the sink. While any wait, a newer ack waits behind
        /// them: sent first, it would cover their samples without their verdicts.
        var awaitingAcks = 0
        var node: String { record.id }
        var key: NodeKey { record.key }

        init(record: NodeRecord, tenant: String, labels: [Label], token: String, highestSeq: UInt64) {
            self.record = record
            self.series = StreamSeries(node: record.id, tenant: tenant, labels: labels)
            self.token = token
            self.highestSeq = highestSeq
        }
    }

    /// Longest `Hello.instance_id` accepted.
    public static let maxInstanceIDBytes = 128

    /// This connection, as the owner of the node streams it opens.
    public let owner: StreamOwner
    private let config: SessionConfig
    private let nodes: NodeTable
    private let authenticator: () -> Authenticator
    /// Closes the connection `owner` that held `node` before this one took it over; the
    /// server routes it to the owner's reactor thread.
    private let evictElsewhere: (_ owner: StreamOwner, _ node: String) -> Void
    private let scorer: Scorer
    private let sink: SampleSink
    private let stats: ServerStats
    private var streams: [UInt32: Stream] = [:]
    private var dueStreams: [UInt32] = []
    /// Acks waiting for the sink to make their samples durable: (stream, seq, verdicts, ticket).
    private var awaiting: [(stream: UInt32, seq: UInt64, verdicts: [Verdict], ticket: UInt64)] = []
    /// Where a stream's frames are joined and judged; shared with the thread's other sessions.
    private let scratch: StoreScratch

    /// Messages waiting to be sent, in order.
    public private(set) var outgoing: [Message] = []
    /// Set once the connection must close (after `outgoing` is flushed).
    public private(set) var closeReason: String?
    /// Called when messages were queued outside `receive` (an eviction caused by another
    /// connection), so the owner writes them now.
    public var onUnpromptedOutput: (() -> Void)?
    /// Called with the reason of every protocol violation or limit hit, and a detail to log
    /// when there is more to say than the reason.
    public var onViolation: ((_ reason: String, _ detail: String?) -> Void)?
    /// The peer's address, for messages that name it (a node-id conflict).
    public var peer = ""
    /// The tenant a verified client certificate names (mutual TLS with tenant from the
    /// certificate): a Hello without a token gets this tenant; one with a token must name
    /// the same tenant.
    public var certificateTenant: String?
    /// Whether a stream was ever opened (the handshake timeout stops applying; the peer is
    /// authenticated and gets the full frame size).
    public var hasOpenedStream: Bool { streamsOpened > 0 }
    private var streamsOpened = 0

    public init(
        owner: StreamOwner, config: SessionConfig, nodes: NodeTable, authenticator: @escaping () -> Authenticator,
        scorer: Scorer, sink: SampleSink, stats: ServerStats, scratch: StoreScratch = StoreScratch(),
        evictElsewhere: @escaping (_ owner: StreamOwner, _ node: String) -> Void
    ) {
        self.owner = owner
        self.evictElsewhere = evictElsewhere
        self.config = config
        self.nodes = nodes
        self.authenticator = authenticator
        self.scorer = scorer
        self.sink = sink
        self.stats = stats
        self.scratch = scratch
    }

    /// Takes the messages to send; the caller encodes and writes them.
    public func takeOutgoing() -> [Message] {
        defer { outgoing.removeAll(keepingCapacity: true) }
        return outgoing
    }

    /// Handles one decoded message from the agent.
    public func receive(_ message: Message, nowNs: Int64) {
        guard closeReason == nil else { return }
        switch message {
        case .hello(let hello): open(hello, nowNs: nowNs)
        case .samples(let batch): accept(batch, nowNs: nowNs)
        case .ping(let ping): outgoing.append(.pong(Pong(nonce: ping.nonce)))
        case .pong: break
        case .goodbye(let goodbye): close("peer said goodbye: \(goodbye.reason)")
        case .error(let error):
            if error.streamID == 0 {
                close("peer error \(error.code): \(error.message)")
            } else if let stream = streams.removeValue(forKey: error.streamID) {
                stream.record.release(owner, nowNs: nowNs)
            }
        case .welcome, .ack:
            fail(.invalidArgument, "Welcome and Ack are sent by the server only", reason: "server_only_message")
        }
    }

    /// Scores and stores what each stream accepted since the last flush, then sends one
    /// cumulative `Ack` per such stream (called once per socket read, so acks coalesce).
    public func flushAcks() {
        let due = dueStreams
        dueStreams.removeAll(keepingCapacity: true)
        for id in due {
            guard let stream = streams[id], stream.ackDue else { continue }
            stream.ackDue = false
            guard store(stream) else { return evict(stream.node) }
            if stream.awaitingAcks == 0 && stream.ticket <= sink.durableTicket {
                appendAck(id, durableSeq: stream.highestSeq, verdicts: stream.verdicts, detector: stream.detector)
            } else {
                awaiting.append((id, stream.highestSeq, stream.verdicts, stream.ticket))
                stream.awaitingAcks += 1
            }
            stream.verdicts.removeAll(keepingCapacity: true)
        }
    }

    /// Whether acks wait for the sink.
    public var hasAwaitingAcks: Bool { !awaiting.isEmpty }

    /// Sends the acks whose samples the sink made durable (up to ticket `durable`), one per
    /// stream, carrying every verdict they collected.
    public func releaseAcks(durable: UInt64) {
        guard !awaiting.isEmpty else { return }
        var ready: [UInt32: (seq: UInt64, verdicts: [Verdict])] = [:]
        var order: [UInt32] = []
        var keep: [(stream: UInt32, seq: UInt64, verdicts: [Verdict], ticket: UInt64)] = []
        for entry in awaiting {
            guard entry.ticket <= durable else { keep.append(entry); continue }
            if let stream = streams[entry.stream] { stream.awaitingAcks = max(0, stream.awaitingAcks - 1) }
            if ready[entry.stream] == nil { order.append(entry.stream) }
            ready[entry.stream, default: (0, [])].seq = max(ready[entry.stream]?.seq ?? 0, entry.seq)
            ready[entry.stream]!.verdicts += entry.verdicts
        }
        awaiting = keep
        for id in order where streams[id] != nil {
            appendAck(id, durableSeq: ready[id]!.seq, verdicts: ready[id]!.verdicts, detector: streams[id]!.detector)
        }
    }

    /// Verdicts one `Ack` carries at most: ~210 KB of frame at most, ~1.2 MB decoded by the
    /// agent. Released after a long commit stall, one stream's acks can hold up to the sink's
    /// high water of samples (a million), which as one Ack would pass the agent's 4 MiB
    /// frame cap and be refused.
    static let maxVerdictsPerAck = 10_000

    /// Queues `stream`'s ack: one `Ack`, or with more than `maxVerdictsPerAck` verdicts as
    /// many as they need, each with the same durable seq (an ack is cumulative, so the
    /// repeats only carry the rest of the verdicts).
    private func appendAck(_ stream: UInt32, durableSeq: UInt64, verdicts: [Verdict], detector: DetectorState) {
        guard verdicts.count > Self.maxVerdictsPerAck else {
            return outgoing.append(.ack(Ack(streamID: stream, durableSeq: durableSeq, anomalies: verdicts, detector: detector)))
        }
        for start in stride(from: 0, to: verdicts.count, by: Self.maxVerdictsPerAck) {
            let part = Array(verdicts[start..<min(start + Self.maxVerdictsPerAck, verdicts.count)])
            outgoing.append(.ack(Ack(streamID: stream, durableSeq: durableSeq, anomalies: part, detector: detector)))
        }
    }

    /// A newer connection took `node` over: this one gets an `Error` and closes, so the
    /// node is never written by two connections at once.
    public func evict(_ node: String) {
        guard closeReason == nil else { return }
        stats.evictions.add()
        fail(.aborted, "node \(node) connected again on another connection", reason: "superseded")
        onUnpromptedOutput?()
    }

    /// The connection is gone: release its nodes.
    public func closed(nowNs: Int64) {
        // Samples read before the close are stored; the agent learns it from the next Welcome.
        for stream in streams.values {
            if !stream.pending.isEmpty { _ = store(stream) }
            stream.record.release(owner, nowNs: nowNs)
        }
        streams.removeAll()
    }

    /// The tokens were reloaded: a stream whose token no longer names its tenant is closed,
    /// with the connection (issue #10, defect 10: a revoked token kept streaming).
    public func revalidate(_ authenticator: Authenticator) {
        guard closeReason == nil else { return }
        for stream in streams.values where authenticator.tenant(for: stream.token) != stream.tenant {
            stats.authFailures.add()
            return fail(.unauthenticated, "the token of node \(stream.node) was revoked", reason: "token_revoked")
        }
    }

    /// Tells the peer the connection closes, for a server shutdown.
    public func sayGoodbye(_ reason: String) {
        flushAcks()
        outgoing.append(.goodbye(Goodbye(reason: reason)))
        if closeReason == nil { closeReason = "server shutdown" }
    }

    /// Sends a keepalive `Ping`.
    public func ping(nonce: UInt64) {
        outgoing.append(.ping(Ping(nonce: nonce)))
    }

    /// Sends a connection-level `Error` and marks the connection for closing.
    public func fail(_ code: StatusCode, _ message: String, reason: String, streamID: UInt32 = 0) {
        guard closeReason == nil else { return }
        // Closing from here on: if the flush below finds the node taken over, its eviction
        // must not send a second Error.
        closeReason = reason
        violated(reason)
        flushAcks()
        outgoing.append(.error(ErrorMessage(code: code, message: message, streamID: streamID)))
    }

    // MARK: - Hello

    private func open(_ hello: Hello, nowNs: Int64) {
        guard hello.protocolVersion == Preface.version else {
            return fail(.unimplemented, "protocol version \(hello.protocolVersion) not supported (server speaks \(Preface.version))",
                        reason: "bad_protocol_version", streamID: hello.streamID)
        }
        guard hello.streamID != 0 else {
            return fail(.invalidArgument, "stream_id 0 is reserved for the connection", reason: "bad_stream_id")
        }
        guard streams[hello.streamID] == nil else {
            return fail(.failedPrecondition, "stream \(hello.streamID) is already open", reason: "duplicate_hello",
                        streamID: hello.streamID)
        }
        // Identity and labels are checked before the token (cheap, and the answer names the
        // mistake), so that every sample accepted later is one InfluxDB writes as sent.
        if let problem = MetricNames.nodeIDProblem(hello.nodeID) {
            return fail(.invalidArgument, problem, reason: "bad_node_id", streamID: hello.streamID)
        }
        // The instance id is kept with the node while its stream is open and quoted in
        // conflict errors: bounded like every other byte a peer sends (agents send 16 hex).
        guard hello.instanceID.utf8.count <= Self.maxInstanceIDBytes else {
            return fail(.invalidArgument, "instance_id longer than \(Self.maxInstanceIDBytes) bytes", reason: "bad_instance_id",
                        streamID: hello.streamID)
        }
        if let problem = MetricNames.labelsProblem(hello.labels) {
            return fail(.invalidArgument, "node \(hello.nodeID): \(problem)", reason: "bad_labels", streamID: hello.streamID)
        }
        let tenant: String
        if let certified = certificateTenant, hello.authToken.isEmpty {
            tenant = certified
        } else {
            guard let named = authenticator().tenant(for: hello.authToken) else {
                stats.authFailures.add()
                return fail(.unauthenticated, "bad or missing auth token for node \(hello.nodeID)", reason: "unauthenticated",
                            streamID: hello.streamID)
            }
            if let certified = certificateTenant, certified != named {
                stats.authFailures.add()
                return fail(.unauthenticated, "the token of node \(hello.nodeID) names another tenant than its client certificate (\(certified))",
                            reason: "tenant_mismatch", streamID: hello.streamID)
            }
            tenant = named
        }
        guard streams.count < config.maxStreamsPerConnection else {
            violated("max_streams")
            outgoing.append(.error(ErrorMessage(
                code: .resourceExhausted, message: "at most \(config.maxStreamsPerConnection) streams per connection",
                streamID: hello.streamID)))
            return
        }
        let key = NodeKey(tenant: tenant, node: hello.nodeID)
        // A node opened twice on this same connection: the newer stream replaces the older.
        if let (oldID, _) = streams.first(where: { $0.value.key == key }) {
            streams[oldID] = nil
        }
        let claimed = nodes.claim(key, labels: hello.labels, by: owner, instance: hello.instanceID, peer: peer, nowNs: nowNs)
        if case .conflict(let holder) = claimed {
            // Two live agent processes with one node id (cloned VMs): evicting would make them
            // take turns forever, each storing a fraction (issue #12). The newcomer is refused.
            let message = "node \(hello.nodeID) is already streaming from \(holder.peer) (agent instance \(holder.instance)); "
                + "this connection from \(peer) (agent instance \(hello.instanceID)) uses the same node id: "
                + "give each machine its own --node-id"
            closeReason = "node_id_conflict"
            violated("node_id_conflict", detail: message)
            flushAcks()
            outgoing.append(.error(ErrorMessage(code: .alreadyExists, message: message, streamID: 0)))
            return
        }
        guard case .claimed(let record, let state, let previous) = claimed else {
            let tenantFull = if case .tenantFull = claimed { true } else { false }
            violated(tenantFull ? "max_nodes_per_tenant" : "max_nodes")
            outgoing.append(.error(ErrorMessage(
                code: .resourceExhausted,
                message: tenantFull ? "tenant \(tenant) has \(nodes.perTenant) nodes already" : "the server tracks \(nodes.capacity) nodes already",
                streamID: hello.streamID)))
            return
        }
        if let previous { evictElsewhere(previous, hello.nodeID) }
        let opened = Stream(record: record, tenant: tenant, labels: hello.labels, token: hello.authToken,
                            highestSeq: max(state.acceptedSeq, state.durableSeq))
        opened.ticket = state.lastTicket
        streams[hello.streamID] = opened
        streamsOpened += 1
        stats.streamsOpened.add()
        outgoing.append(.welcome(Welcome(
            streamID: hello.streamID, accepted: true, serverID: config.serverID, durableSeq: state.durableSeq,
            limits: ServerLimits(
                maxFrameBytes: UInt32(config.maxFrameBytes), keepaliveIntervalMs: config.keepaliveIntervalMs,
                maxStreams: UInt32(config.maxStreamsPerConnection)))))
    }

    // MARK: - Samples

    private func accept(_ batch: SampleBatch, nowNs: Int64) {
        guard let stream = streams[batch.streamID] else {
            violated("unknown_stream")
            outgoing.append(.error(ErrorMessage(
                code: .notFound, message: "stream \(batch.streamID) is not open: send Hello first", streamID: batch.streamID)))
            return
        }
        // Bounds first, so a bad batch is refused whole (issue #10, defects 3 and 10).
        let latestNs = nowNs > Int64.max - config.maxFutureNs ? Int64.max : nowNs + config.maxFutureNs
        var running = stream.highestSeq
        // Whether every sample is new and in order (an agent's usual batch): then the batch's
        // array is taken as it is, with no copy of each sample.
        var inOrder = true
        // By index: `for sample in` copies each sample (and its gauges' array) out.
        for i in batch.samples.indices {
            let sample = batch.samples[i]
            let limit = running == 0 ? SessionConfig.maxFirstSeq : Self.jumpLimit(running, config.maxSeqJump)
            guard sample.timestampNs >= 0, sample.timestampNs <= latestNs else {
                return fail(.invalidArgument, "node \(stream.node) seq \(sample.seq): timestamp \(sample.timestampNs) ns is outside "
                            + "the accepted window (the Unix epoch to \(config.maxFutureNs / 86_400_000_000_000) days past the server's clock); check the clock",
                            reason: "bad_timestamp", streamID: batch.streamID)
            }
            guard sample.seq <= limit else {
                return fail(.invalidArgument, "node \(stream.node): seq \(sample.seq) jumps past \(limit) (at most \(config.maxSeqJump) "
                            + "beyond the highest seq, and a stream starts at most at 2^62)",
                            reason: "seq_jump", streamID: batch.streamID)
            }
            inOrder = inOrder && sample.seq > running
            running = max(running, sample.seq)
        }
        // Drop resends (at or below what this stream already accepted) and anything out of order.
        var highest = stream.highestSeq
        var duplicates: UInt64 = 0
        if inOrder {
            if !batch.samples.isEmpty { stream.pending.append(batch.samples) }
            highest = running
        } else {
            var kept: [Sample] = []
            for i in batch.samples.indices {
                if batch.samples[i].seq > highest {
                    kept.append(batch.samples[i])
                    highest = batch.samples[i].seq
                } else {
                    duplicates += 1
                }
            }
            if !kept.isEmpty { stream.pending.append(kept) }
        }
        stream.highestSeq = highest
        stream.pendingDuplicates += duplicates
        stream.lastSeenNs = nowNs
        if !stream.ackDue {
            stream.ackDue = true
            dueStreams.append(batch.streamID)
        }
    }

    /// Scores the stream's pending samples, moves the node's durable seq, and hands them to
    /// the sink. False when this connection no longer owns the node (a newer connection took
    /// it over): then nothing is stored, and the agent resends on its new connection.
    private func store(_ stream: Stream) -> Bool {
        defer { scratch.trim() }
        let fresh: [Sample]
        if stream.pending.count <= 1 {
            fresh = stream.pending.first ?? []
        } else {
            // Several frames: joined in the thread's reused buffer (unshared again once this
            // store is done, so it is emptied in place next time, not reallocated; growing a
            // fresh array per read instead faulted in new pages: 10 % of the server's CPU
            // with 64-sample frames pipelined).
            fresh = scratch.join(stream.pending)
        }
        stream.pending.removeAll(keepingCapacity: true)
        let duplicates = stream.pendingDuplicates
        stream.pendingDuplicates = 0
        var events: [IncidentEvent] = []
        if !fresh.isEmpty {
            scorer.score(fresh, key: stream.key, into: &scratch.judgement)
            events = scorer.takeEvents()
            stream.detector = scratch.judgement.state
        }
        let judgement = scratch.judgement
        var anomalies: UInt64 = 0
        for i in fresh.indices where judgement.flagged[i] { anomalies += 1 }
        // Only the connection that owns the node moves its durable seq.
        let highest = stream.highestSeq
        let seen = stream.lastSeenNs
        let lastScore = fresh.isEmpty ? 0 : judgement.scores[fresh.count - 1]
        var peak = 0.0
        for i in 0..<fresh.count where judgement.scores[i] > peak { peak = judgement.scores[i] }
        let owned = stream.record.update(ifOwnedBy: owner) { state in
            state.acceptedSeq = max(state.acceptedSeq, highest)
            state.lastSeenNs = seen
            state.samples += UInt64(fresh.count)
            state.anomalies += anomalies
            state.duplicates += duplicates
            if let last = fresh.last {
                state.lastSample = last
                state.lastScore = lastScore
                state.trail.add(peak, nowNs: seen)
            }
        }
        guard owned else { return false }
        if !fresh.isEmpty {
            let scored = ScoredSamples(samples: fresh, scores: judgement.scores, flagged: judgement.flagged)
            stream.ticket = sink.append(scored, series: stream.series, record: stream.record, highestSeq: highest)
            // Incidents go to the store right behind the samples that opened or closed them.
            if !events.isEmpty, let ticket = sink.appendIncidents(events, record: stream.record, highestSeq: highest) {
                stream.ticket = ticket
            }
            _ = stream.record.update(ifOwnedBy: owner) { $0.lastTicket = stream.ticket }
        }
        if anomalies > 0 {
            for i in fresh.indices where judgement.flagged[i] {
                stream.verdicts.append(Verdict(seq: fresh[i].seq, score: judgement.scores[i]))
            }
        }
        stats.samplesAccepted.add(UInt64(fresh.count))
        stats.samplesDuplicate.add(duplicates)
        stats.anomalies.add(anomalies)
        return true
    }

    /// The highest seq a stream at `highest` may send next (saturating, never trapping).
    private static func jumpLimit(_ highest: UInt64, _ jump: UInt64) -> UInt64 {
        let (sum, overflow) = highest.addingReportingOverflow(jump)
        return overflow ? .max : sum
    }

    private func violated(_ reason: String, detail: String? = nil) {
        stats.violation(reason)
        onViolation?(reason, detail)
    }

    private func close(_ reason: String) {
        if closeReason == nil { closeReason = reason }
    }
}
