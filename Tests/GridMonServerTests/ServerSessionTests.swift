import Testing
import GridMonWire
import GridMonDetect
import GridMonForest
import GridMonStore
import Glibc
@testable import GridMonServer

/// A sink that records what it was given.
final class RecordingSink: SampleSink, @unchecked Sendable {  // used from one thread only
    var appended: [ScoredSample] = []
    /// The tenant of each sample in `appended`.
    var appendedTenants: [String] = []
    var notReadyReason: String?
    var queuedSamples: Int { 0 }
    var highWater: Int { .max }
    var lowWater: Int { .max }
    /// Tickets up to this are durable; tests move it to release acks.
    var durableTicket: UInt64 = .max
    var nextTicket: UInt64 = 0
    var pendingDurable: [(NodeRecord, UInt64)] = []
    func append(_ samples: ScoredSamples, series: StreamSeries, record: NodeRecord, highestSeq: UInt64) -> UInt64 {
        appended += samples
        appendedTenants += Array(repeating: series.tenant, count: samples.count)
        nextTicket += 1
        if nextTicket <= durableTicket { record.markDurable(highestSeq) } else { pendingDurable.append((record, highestSeq)) }
        return nextTicket
    }
}

/// A scorer that flags samples whose seq is in `flagged`.
final class FlaggingScorer: Scorer {
    var flagged: Set<UInt64> = []
    func score(_ samples: [Sample], key: NodeKey, into verdicts: inout Judgement) {
        verdicts.scores = samples.map { flagged.contains($0.seq) ? 0.9 : 0.1 }
        verdicts.flagged = verdicts.scores.map { $0 >= 0.5 }
        verdicts.state = .unspecified  // the acks below compare whole; the state's own test sets it
    }
}

/// Sessions on one pretend worker; evictions are routed to the session that lost the node.
final class SessionFixture {
    var nodes = NodeTable()
    let sink = RecordingSink()
    let scorer = FlaggingScorer()
    let stats = ServerStats()
    var auth = Authenticator(tokens: ["good": "acme", "beta-token": "beta"])
    var sessions: [UInt64: ServerSession] = [:]
    /// Shared by every session, as a worker shares one among its connections.
    let scratch = StoreScratch()

    func session(_ id: UInt64 = 1, maxStreams: Int = 8) -> ServerSession {
        var config = SessionConfig()
        config.maxStreamsPerConnection = maxStreams
        let auth = self.auth
        let session = ServerSession(
            owner: StreamOwner(worker: 0, connection: id), config: config, nodes: nodes, authenticator: { auth },
            scorer: scorer, sink: sink, stats: stats, scratch: scratch,
            evictElsewhere: { [unowned self] owner, node in self.sessions[owner.connection]?.evict(node) })
        sessions[id] = session
        return session
    }
}

private func samples(_ stream: UInt32, _ seqs: ClosedRange<UInt64>) -> Message {
    .samples(SampleBatch(streamID: stream, samples: seqs.map { Sample(seq: $0, timestampNs: Int64($0)) }))
}

@Suite struct ServerSessionTests {
    @Test func helloIsWelcomedWithLimitsAndDurableSeq() {
        let f = SessionFixture()
        let s = f.session()
        s.receive(.hello(Hello(nodeID: "n1", authToken: "good", streamID: 3)), nowNs: 0)
        guard case .welcome(let w)? = s.takeOutgoing().first else { Issue.record("no welcome"); return }
        #expect(w.streamID == 3 && w.accepted && w.durableSeq == 0 && w.limits?.maxStreams == 8)
        #expect(f.nodes[NodeKey(tenant: "acme", node: "n1")]?.tenant == "acme")
        #expect(s.closeReason == nil)
    }

    @Test func acksAreCoalescedPerFlushAndCarryVerdicts() {
        let f = SessionFixture()
        f.scorer.flagged = [2, 5]
        let s = f.session()
        s.receive(.hello(Hello(nodeID: "n1", authToken: "good", streamID: 1)), nowNs: 0)
        _ = s.takeOutgoing()
        s.receive(samples(1, 1...3), nowNs: 10)
        s.receive(samples(1, 4...6), nowNs: 20)
        #expect(s.takeOutgoing().isEmpty)  // nothing until the flush
        s.flushAcks()
        let out = s.takeOutgoing()
        #expect(out == [.ack(Ack(streamID: 1, durableSeq: 6, anomalies: [Verdict(seq: 2, score: 0.9), Verdict(seq: 5, score: 0.9)]))])
        #expect(f.sink.appended.map(\.sample.seq) == Array(1...6))
        #expect(f.sink.appended.filter(\.anomalous).map(\.sample.seq) == [2, 5])
        #expect(f.nodes[NodeKey(tenant: "acme", node: "n1")]?.lastSeenNs == 20)
        s.flushAcks()
        #expect(s.takeOutgoing().isEmpty)  // no new samples, no new ack
    }

    @Test func anAckWithMoreVerdictsThanOneCarriesIsSplitWithTheSameDurableSeq() {
        let f = SessionFixture()
        let count = UInt64(2 * ServerSession.maxVerdictsPerAck + 5)
        f.scorer.flagged = Set(1...count)
        f.sink.durableTicket = 0
        let s = f.session()
        s.receive(.hello(Hello(nodeID: "n1", authToken: "good", streamID: 1)), nowNs: 0)
        _ = s.takeOutgoing()
        // Three reads' worth, released together after the commit: one ack's verdicts.
        for part in [1...count / 3, count / 3 + 1...2 * count / 3, 2 * count / 3 + 1...count] {
            s.receive(samples(1, part), nowNs: 0)
            s.flushAcks()
        }
        s.releaseAcks(durable: .max)
        let acks = s.takeOutgoing().compactMap { if case .ack(let ack) = $0 { ack } else { nil } }
        #expect(acks.map(\.anomalies.count) == [ServerSession.maxVerdictsPerAck, ServerSession.maxVerdictsPerAck, 5])
        #expect(acks.allSatisfy { $0.durableSeq == count && $0.streamID == 1 })
        #expect(acks.flatMap(\.anomalies).map(\.seq) == Array(1...count))
    }

    @Test func acksWaitUntilTheSinkMadeTheSamplesDurable() {
        let f = SessionFixture()
        f.sink.durableTicket = 0
        let s = f.session()
        s.receive(.hello(Hello(nodeID: "n1", authToken: "good", streamID: 1)), nowNs: 0)
        _ = s.takeOutgoing()
        s.receive(samples(1, 1...3), nowNs: 0)
        s.flushAcks()
        #expect(s.takeOutgoing().isEmpty && s.hasAwaitingAcks)
        s.receive(samples(1, 4...5), nowNs: 0)
        s.flushAcks()
        s.releaseAcks(durable: 1)  // the first batch only
        #expect(s.takeOutgoing() == [.ack(Ack(streamID: 1, durableSeq: 3))])
        #expect(f.nodes[NodeKey(tenant: "acme", node: "n1")]?.durableSeq == 0)  // the sink has not said so yet
        for (record, seq) in f.sink.pendingDurable { record.markDurable(seq) }
        s.releaseAcks(durable: 2)
        #expect(s.takeOutgoing() == [.ack(Ack(streamID: 1, durableSeq: 5))])
        #expect(!s.hasAwaitingAcks && f.nodes[NodeKey(tenant: "acme", node: "n1")]?.durableSeq == 5)
    }

    @Test func anAckNeverOvertakesAnOlderOneStillWaitingSoVerdictsComeWithTheirSamples() {
        let f = SessionFixture()
        f.scorer.flagged = [2, 5]
        f.sink.durableTicket = 0
        let s = f.session()
        s.receive(.hello(Hello(nodeID: "n1", authToken: "good", streamID: 1)), nowNs: 0)
        _ = s.takeOutgoing()
        s.receive(samples(1, 1...3), nowNs: 0)
        s.flushAcks()  // ticket 1, waits
        // The committer made tickets 1 and 2 durable before this thread released ticket 1's
        // ack: the ack of 4...6 must not go first (it would cover seq 2 without its verdict).
        f.sink.durableTicket = 2
        s.receive(samples(1, 4...6), nowNs: 0)
        s.flushAcks()
        #expect(s.takeOutgoing().isEmpty)
        s.releaseAcks(durable: 2)
        #expect(s.takeOutgoing() == [.ack(Ack(streamID: 1, durableSeq: 6, anomalies: [Verdict(seq: 2, score: 0.9), Verdict(seq: 5, score: 0.9)]))])
        // With nothing waiting, a durable ack goes at once again.
        f.sink.durableTicket = .max
        s.receive(samples(1, 7...8), nowNs: 0)
        s.flushAcks()
        #expect(s.takeOutgoing() == [.ack(Ack(streamID: 1, durableSeq: 8))])
    }

    @Test func aBatchOutOfOrderKeepsOnlyTheSamplesAboveTheHighestBeforeThem() {
        let f = SessionFixture()
        let s = f.session()
        s.receive(.hello(Hello(nodeID: "n1", authToken: "good", streamID: 1)), nowNs: 0)
        // Nothing pending: an in-order batch is taken whole, one out of order sample by sample.
        let seqs: [UInt64] = [2, 1, 4, 3, 5]
        s.receive(.samples(SampleBatch(streamID: 1, samples: seqs.map { Sample(seq: $0, timestampNs: Int64($0)) })), nowNs: 0)
        s.flushAcks()
        #expect(f.sink.appended.map(\.sample.seq) == [2, 4, 5])
        #expect(f.stats.samplesDuplicate.value == 2)
        s.receive(samples(1, 6...8), nowNs: 0)
        s.flushAcks()
        #expect(f.sink.appended.map(\.sample.seq) == [2, 4, 5, 6, 7, 8])
        #expect(f.stats.samplesDuplicate.value == 2)
        #expect(s.takeOutgoing().last == .ack(Ack(streamID: 1, durableSeq: 8)))
    }

    @Test func resendsAtOrBelowDurableSeqAreAckedNotStored() {
        let f = SessionFixture()
        let s = f.session()
        s.receive(.hello(Hello(nodeID: "n1", authToken: "good", streamID: 1)), nowNs: 0)
        s.receive(samples(1, 1...5), nowNs: 0)
        s.receive(samples(1, 3...7), nowNs: 0)
        s.flushAcks()
        #expect(f.sink.appended.map(\.sample.seq) == Array(1...7))
        #expect(f.stats.samplesDuplicate.value == 3)
        #expect(s.takeOutgoing().last == .ack(Ack(streamID: 1, durableSeq: 7)))
    }

    @Test func badTokenClosesWithUnauthenticatedAndStoresNothing() {
        let f = SessionFixture()
        let s = f.session()
        s.receive(.hello(Hello(nodeID: "n1", authToken: "bad", streamID: 1)), nowNs: 0)
        s.receive(samples(1, 1...5), nowNs: 0)
        #expect(s.takeOutgoing() == [.error(ErrorMessage(code: .unauthenticated, message: "bad or missing auth token for node n1", streamID: 1))])
        #expect(s.closeReason == "unauthenticated")
        #expect(f.sink.appended.isEmpty && f.stats.authFailures.value == 1)
    }

    @Test func samplesForUnknownStreamAreRefusedButConnectionStays() {
        let f = SessionFixture()
        let s = f.session()
        s.receive(samples(9, 1...2), nowNs: 0)
        guard case .error(let e)? = s.takeOutgoing().first else { Issue.record("no error"); return }
        #expect(e.code == .notFound && e.streamID == 9)
        #expect(s.closeReason == nil && f.sink.appended.isEmpty)
    }

    @Test func streamLimitRefusesTheExtraStreamOnly() {
        let f = SessionFixture()
        let s = f.session(maxStreams: 1)
        s.receive(.hello(Hello(nodeID: "a", authToken: "good", streamID: 1)), nowNs: 0)
        s.receive(.hello(Hello(nodeID: "b", authToken: "good", streamID: 2)), nowNs: 0)
        let out = s.takeOutgoing()
        guard case .error(let e) = out.last else { Issue.record("no error"); return }
        #expect(e.code == .resourceExhausted && e.streamID == 2 && s.closeReason == nil)
    }

    @Test func newerConnectionEvictsTheOlderAndTheOlderStopsWriting() {
        let f = SessionFixture()
        let old = f.session(1)
        let new = f.session(2)
        var prompted = false
        old.onUnpromptedOutput = { prompted = true }
        old.receive(.hello(Hello(nodeID: "n", authToken: "good", streamID: 1)), nowNs: 0)
        old.receive(samples(1, 1...2), nowNs: 0)
        old.flushAcks()  // the end of the read that carried them: scored and stored
        old.receive(samples(1, 3...3), nowNs: 0)  // read but not yet flushed when the takeover lands
        new.receive(.hello(Hello(nodeID: "n", authToken: "good", streamID: 1)), nowNs: 0)
        #expect(prompted && old.closeReason == "superseded")
        let errors = old.takeOutgoing().filter { if case .error = $0 { true } else { false } }
        #expect(errors.count == 1)
        guard case .welcome(let w)? = new.takeOutgoing().first else { Issue.record("no welcome"); return }
        #expect(w.durableSeq == 2)
        old.receive(samples(1, 4...5), nowNs: 0)  // ignored: the old session is closing
        #expect(f.sink.appended.count == 2)  // seq 3 was not stored: the node had moved on
        old.closed(nowNs: 0)
        #expect(f.nodes.isHeld(NodeKey(tenant: "acme", node: "n"), by: StreamOwner(worker: 0, connection: 2)))
    }

    @Test func aSecondAgentProcessWithTheSameNodeIDIsRefusedNotAnEvictionLoop() {
        let f = SessionFixture()
        let first = f.session(1)
        first.peer = "10.0.0.1:4000"
        let clone = f.session(2)
        clone.peer = "10.0.0.2:5000"
        first.receive(.hello(Hello(nodeID: "n", authToken: "good", streamID: 1, instanceID: "aaaa")), nowNs: 0)
        clone.receive(.hello(Hello(nodeID: "n", authToken: "good", streamID: 1, instanceID: "bbbb")), nowNs: 0)
        // The clone is told why, naming the node and both peers; the first keeps streaming.
        guard case .error(let e)? = clone.takeOutgoing().last else { Issue.record("no error"); return }
        #expect(e.code == .alreadyExists && clone.closeReason == "node_id_conflict")
        for part in ["node n", "10.0.0.1:4000", "aaaa", "10.0.0.2:5000", "bbbb", "--node-id"] { #expect(e.message.contains(part), "\(part)") }
        #expect(first.closeReason == nil && f.stats.evictions.value == 0 && f.stats.violations["node_id_conflict"] == 1)
        first.receive(samples(1, 1...2), nowNs: 0)
        first.flushAcks()
        #expect(f.sink.appended.count == 2)

        // The same process reconnecting (its old connection not yet seen closed) takes over.
        let again = f.session(3)
        again.receive(.hello(Hello(nodeID: "n", authToken: "good", streamID: 1, instanceID: "aaaa")), nowNs: 0)
        guard case .welcome? = again.takeOutgoing().first else { Issue.record("no welcome"); return }
        #expect(first.closeReason == "superseded")
        // Once the holder is gone, the other machine may have the node (the operator's choice).
        again.closed(nowNs: 0)
        let later = f.session(4)
        later.receive(.hello(Hello(nodeID: "n", authToken: "good", streamID: 1, instanceID: "bbbb")), nowNs: 0)
        guard case .welcome? = later.takeOutgoing().first else { Issue.record("no welcome"); return }

        // An instance id is bounded before it is kept.
        let huge = f.session(5)
        huge.receive(.hello(Hello(nodeID: "m", authToken: "good", streamID: 1,
                                  instanceID: String(repeating: "x", count: ServerSession.maxInstanceIDBytes + 1))), nowNs: 0)
        #expect(huge.closeReason == "bad_instance_id" && f.nodes[NodeKey(tenant: "acme", node: "m")] == nil)
    }

    @Test func aCertificateTenantStandsInForATokenAndMustAgreeWithOne() {
        let f = SessionFixture()
        let bare = f.session(1)
        bare.certificateTenant = "beta"
        bare.receive(.hello(Hello(nodeID: "n", streamID: 1)), nowNs: 0)
        guard case .welcome? = bare.takeOutgoing().first else { Issue.record("no welcome"); return }
        #expect(f.nodes[NodeKey(tenant: "beta", node: "n")] != nil)
        let agreeing = f.session(2)
        agreeing.certificateTenant = "acme"
        agreeing.receive(.hello(Hello(nodeID: "m", authToken: "good", streamID: 1)), nowNs: 0)
        guard case .welcome? = agreeing.takeOutgoing().first else { Issue.record("no welcome"); return }
        let mismatch = f.session(3)
        mismatch.certificateTenant = "beta"
        mismatch.receive(.hello(Hello(nodeID: "o", authToken: "good", streamID: 1)), nowNs: 0)
        guard case .error(let e)? = mismatch.takeOutgoing().last else { Issue.record("no error"); return }
        #expect(e.code == .unauthenticated && mismatch.closeReason == "tenant_mismatch")
        // Without a certificate an empty token is still refused.
        let none = f.session(4)
        none.receive(.hello(Hello(nodeID: "p", streamID: 1)), nowNs: 0)
        #expect(none.closeReason == "unauthenticated")
    }

    @Test func pingIsAnsweredAndServerOnlyMessagesAreViolations() {
        let f = SessionFixture()
        let s = f.session()
        s.receive(.ping(Ping(nonce: 9)), nowNs: 0)
        #expect(s.takeOutgoing() == [.pong(Pong(nonce: 9))])
        s.receive(.ack(Ack(streamID: 1, durableSeq: 1)), nowNs: 0)
        guard case .error(let e)? = s.takeOutgoing().first else { Issue.record("no error"); return }
        #expect(e.code == .invalidArgument && s.closeReason == "server_only_message")
        #expect(f.stats.violations["server_only_message"] == 1)
    }

    // MARK: - Hardening (issue #10)

    private func hello(_ node: String, _ stream: UInt32, token: String = "good", labels: [Label] = []) -> Message {
        .hello(Hello(nodeID: node, agentVersion: "t", labels: labels, authToken: token, streamID: stream))
    }

    private func errors(_ messages: [Message]) -> [ErrorMessage] {
        messages.compactMap { if case .error(let e) = $0 { e } else { nil } }
    }

    @Test func anotherTenantWithTheSameNodeIDNeitherEvictsNorSeesTheNode() {
        let f = SessionFixture()
        let a = f.session(1)
        a.receive(hello("web-1", 1), nowNs: 1)
        a.receive(samples(1, 1...50), nowNs: 2)
        a.flushAcks()
        _ = a.takeOutgoing()
        let b = f.session(2)
        b.receive(hello("web-1", 1, token: "beta-token"), nowNs: 3)
        guard case .welcome(let w)? = b.takeOutgoing().first else { Issue.record("no welcome"); return }
        #expect(w.durableSeq == 0)  // not acme's 50
        #expect(a.closeReason == nil && f.stats.evictions.value == 0)
        b.receive(samples(1, 1...3), nowNs: 4)
        b.flushAcks()
        #expect(f.nodes[NodeKey(tenant: "acme", node: "web-1")]?.samples == 50)
        #expect(f.nodes[NodeKey(tenant: "beta", node: "web-1")]?.samples == 3)
        #expect(f.sink.appendedTenants.filter { $0 == "beta" }.count == 3)
    }

    @Test func aSeqJumpPastTheBoundIsRefusedAndPoisonsNothing() {
        let f = SessionFixture()
        let s = f.session()
        s.receive(hello("n1", 1), nowNs: 1)
        s.receive(samples(1, 1...3), nowNs: 2)
        s.receive(.samples(SampleBatch(streamID: 1, samples: [Sample(seq: UInt64.max, timestampNs: 5)])), nowNs: 3)
        let out = s.takeOutgoing()
        #expect(errors(out).first?.code == .invalidArgument && s.closeReason == "seq_jump")
        // What came before was acked; the huge seq was not taken.
        #expect(out.contains(.ack(Ack(streamID: 1, durableSeq: 3))))
        #expect(f.nodes[NodeKey(tenant: "acme", node: "n1")]?.acceptedSeq == 3)
        // A new connection carries on from 3.
        let next = f.session(2)
        next.receive(hello("n1", 1), nowNs: 4)
        guard case .welcome(let w)? = next.takeOutgoing().first else { Issue.record("no welcome"); return }
        #expect(w.durableSeq == 3)
        next.receive(samples(1, 4...5), nowNs: 5)
        next.flushAcks()
        #expect(next.takeOutgoing() == [.ack(Ack(streamID: 1, durableSeq: 5))])
    }

    @Test func aStreamMayStartHighButNotPastTwoToThe62() {
        let f = SessionFixture()
        let s = f.session()
        s.receive(hello("n1", 1), nowNs: 1)
        _ = s.takeOutgoing()
        s.receive(samples(1, 5_000_000...5_000_001), nowNs: 2)
        s.flushAcks()
        #expect(s.takeOutgoing() == [.ack(Ack(streamID: 1, durableSeq: 5_000_001))])
        let t = f.session(2)
        t.receive(hello("n2", 1), nowNs: 1)
        t.receive(.samples(SampleBatch(streamID: 1, samples: [Sample(seq: (1 << 62) + 1, timestampNs: 1)])), nowNs: 2)
        #expect(t.closeReason == "seq_jump")
    }

    @Test func timestampsOutsideTheWindowAreRefused() {
        let f = SessionFixture()
        let now: Int64 = 1_767_225_600_000_000_000
        for bad in [Int64.min, -1, Int64.max, now + 8 * 86_400 * 1_000_000_000] {
            let s = f.session()
            s.receive(hello("n-\(bad)", 1), nowNs: now)
            _ = s.takeOutgoing()
            s.receive(.samples(SampleBatch(streamID: 1, samples: [Sample(seq: 1, timestampNs: bad)])), nowNs: now)
            #expect(s.closeReason == "bad_timestamp")
            #expect(errors(s.takeOutgoing()).first?.message.contains("outside the accepted window") == true)
        }
        #expect(f.sink.appended.isEmpty)
    }

    @Test func helloWithLabelsOrIDsInfluxDBCannotTakeIsRefused() {
        let f = SessionFixture()
        let cases: [(String, [Label])] = [
            ("node\\", []), ("a\nb", []), ("ok", [Label(key: "k2", value: "a\\")]),
            ("ok", [Label(key: "k", value: "1"), Label(key: "k", value: "2")]), ("ok", [Label(key: "time", value: "x")]),
            ("ok", (0..<33).map { Label(key: "k\($0)", value: "v") }),
        ]
        for (node, labels) in cases {
            let s = f.session()
            s.receive(hello(node, 1, labels: labels), nowNs: 1)
            #expect(errors(s.takeOutgoing()).first?.code == .invalidArgument)
            #expect(s.closeReason == "bad_node_id" || s.closeReason == "bad_labels")
        }
        #expect(f.nodes.count == 0)
    }

    @Test func aRevokedTokenClosesItsStreams() {
        let f = SessionFixture()
        let s = f.session()
        s.receive(hello("n1", 1), nowNs: 1)
        _ = s.takeOutgoing()
        s.revalidate(Authenticator(tokens: ["good": "acme"]))
        #expect(s.closeReason == nil)
        s.revalidate(Authenticator(tokens: ["other": "acme"]))
        #expect(s.closeReason == "token_revoked")
        #expect(errors(s.takeOutgoing()).first?.code == .unauthenticated)
    }

    @Test func oneTenantFillingItsShareLeavesRoomForOthers() {
        let f = SessionFixture()
        f.nodes = NodeTable(capacity: 100, perTenant: 3)
        let s = f.session(maxStreams: 100)
        for i in 1...5 { s.receive(hello("n\(i)", UInt32(i)), nowNs: 1) }
        let refused = errors(s.takeOutgoing())
        #expect(refused.count == 2 && refused.allSatisfy { $0.code == .resourceExhausted })
        #expect(f.stats.violations["max_nodes_per_tenant"] == 2)
        let b = f.session(2)
        b.receive(hello("n1", 1, token: "beta-token"), nowNs: 1)
        guard case .welcome? = b.takeOutgoing().first else { Issue.record("beta refused"); return }
        // Idle, released nodes are forgotten; then there is room again.
        s.closed(nowNs: 2)
        #expect(f.nodes.forgetIdle(before: 3).count == 3)
        #expect(f.nodes.countsByTenant["acme"] == nil && f.nodes.countsByTenant["beta"] == 1)
    }
}

@Suite struct NodeLearnerTests {
    /// Issue #11: the trainer thread ended after its first batch of jobs (`Job??`), so no node
    /// was ever refit and nodes that warmed up later never got a model.
    @Test func theTrainerKeepsFittingAfterItsFirstJob() throws {
        let registry = ModelRegistry(default: DefaultModel.make())
        var options = NodeLearner.Options()
        options.warmup = 20
        options.refitEvery = 20
        options.trees = 5
        let learner = NodeLearner(options: options, registry: registry)
        learner.start()
        defer { learner.stop() }
        let features = ForestScorer.nodeFeatures.names
        func feed(_ node: String, _ count: Int) {
            let rows = (0..<count * features.count).map { Float($0 % 17) }
            learner.observe(node: NodeKey(tenant: "t", node: node), features: features, rows: rows, flagged: [Bool](repeating: false, count: count))
        }
        func waitFor(_ fits: UInt64) -> Bool {
            for _ in 0..<500 where learner.fits.value < fits { usleep(10_000) }
            return learner.fits.value >= fits
        }
        feed("a", 20)
        #expect(waitFor(1))
        feed("b", 20)  // a node that warms up later
        #expect(waitFor(2))
        feed("a", 20)  // a refit
        #expect(waitFor(3))
        #expect(registry.nodeModelCount == 2)
    }

    /// Issue #11: a node whose history is constant got a model whose every score equals its
    /// threshold, so `>=` flagged every sample.
    @Test func aConstantHistoryNeverFlags() throws {
        let registry = ModelRegistry(default: DefaultModel.make())
        var options = NodeLearner.Options()
        options.warmup = 20
        options.trees = 5
        let learner = NodeLearner(options: options, registry: registry)
        learner.start()
        defer { learner.stop() }
        let features = ForestScorer.nodeFeatures.names
        let key = NodeKey(tenant: "t", node: "flat")
        learner.observe(node: key, features: features, rows: [Float](repeating: 0, count: 20 * features.count),
                        flagged: [Bool](repeating: false, count: 20))
        for _ in 0..<500 where learner.fits.value < 1 { usleep(10_000) }
        let scorer = ForestScorer(registry: registry, learner: nil)
        var verdicts = Judgement()
        scorer.score([Sample(seq: 1, timestampNs: 1)], key: key, into: &verdicts)
        #expect(registry.kind(node: "flat", tenant: "t") == .node)
        #expect(verdicts.flagged == [false])
    }
}

/// A stream's series key is made once, when it opens, and is what every outbox record of the
/// stream is written with.
@Suite struct StreamSeriesTests {
    @Test func theSeriesKeyIsTheEscapedSortedTagSetWithReservedAndEmptyLabelsLeftOutAndCounted() {
        let series = StreamSeries(node: "web 1", tenant: "acme", labels: [Label(key: "rack", value: "r,2"), Label(key: "host", value: "other"),
                                                                          Label(key: "az", value: "")])
        #expect(series.lineSeriesKey.map { String(decoding: $0, as: UTF8.self) } == #"system_metrics,host=web\ 1,rack=r\,2,tenant=acme"#)
        #expect(series.lineSeriesDrops.emptyTags == 1)  // "az" has no value; "host" is GridMon's own tag
        var drops = LineProtocolDrops()
        #expect(series.lineSeriesKey == SystemMetrics.seriesKey(node: "web 1", tenant: "acme", labels: series.labels, drops: &drops))
        #expect(drops == series.lineSeriesDrops)
    }
}
