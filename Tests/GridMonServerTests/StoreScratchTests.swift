import Testing
import GridMonWire
@testable import GridMonServer

private func batch(_ stream: UInt32, _ seqs: ClosedRange<UInt64>, cpu: Double) -> Message {
    .samples(SampleBatch(streamID: stream, samples: seqs.map {
        Sample(seq: $0, timestampNs: Int64($0), cpuPercent: cpu, extra: [Gauge(name: "g", value: Double($0))])
    }))
}

/// Sessions of one worker share a `StoreScratch`: what one stores must never show through in
/// another's samples, verdicts or acks.
@Suite struct StoreScratchTests {
    @Test func sessionsSharingTheScratchStoreAndJudgeOnlyTheirOwnFrames() {
        let f = SessionFixture()
        f.scorer.flagged = [3, 12]
        let a = f.session(1), b = f.session(2)
        a.receive(.hello(Hello(nodeID: "a", authToken: "good", streamID: 1)), nowNs: 0)
        a.receive(.hello(Hello(nodeID: "a2", authToken: "good", streamID: 2)), nowNs: 0)
        b.receive(.hello(Hello(nodeID: "b", authToken: "good", streamID: 1)), nowNs: 0)
        _ = a.takeOutgoing(); _ = b.takeOutgoing()

        // Reads of several frames each (joined), interleaved across sessions and streams.
        a.receive(batch(1, 1...4, cpu: 1), nowNs: 1)
        a.receive(batch(2, 1...2, cpu: 2), nowNs: 1)
        a.receive(batch(1, 5...6, cpu: 1), nowNs: 1)
        a.receive(batch(2, 3...5, cpu: 2), nowNs: 1)
        b.receive(batch(1, 10...11, cpu: 3), nowNs: 1)
        b.receive(batch(1, 12...12, cpu: 3), nowNs: 1)
        a.flushAcks()
        b.flushAcks()
        #expect(a.takeOutgoing() == [.ack(Ack(streamID: 1, durableSeq: 6, anomalies: [Verdict(seq: 3, score: 0.9)])),
                                     .ack(Ack(streamID: 2, durableSeq: 5, anomalies: [Verdict(seq: 3, score: 0.9)]))])
        #expect(b.takeOutgoing() == [.ack(Ack(streamID: 1, durableSeq: 12, anomalies: [Verdict(seq: 12, score: 0.9)]))])
        let stored = f.sink.appended.map { [Double($0.sample.seq), $0.sample.cpuPercent, $0.sample.extra[0].value] }
        #expect(stored == [[1, 1, 1], [2, 1, 2], [3, 1, 3], [4, 1, 4], [5, 1, 5], [6, 1, 6],
                           [1, 2, 1], [2, 2, 2], [3, 2, 3], [4, 2, 4], [5, 2, 5],
                           [10, 3, 10], [11, 3, 11], [12, 3, 12]])
        #expect(f.sink.appended.filter(\.anomalous).map(\.sample.seq) == [3, 3, 12])

        // A later single frame is not mixed with what the scratch held before.
        b.receive(batch(1, 13...13, cpu: 4), nowNs: 2)
        b.flushAcks()
        #expect(b.takeOutgoing() == [.ack(Ack(streamID: 1, durableSeq: 13))])
        #expect(f.sink.appended.suffix(1).map(\.sample.seq) == [13])
    }

    @Test func roomBeyondTheBoundIsGivenBackAfterTheStore() {
        let f = SessionFixture()
        let s = f.session()
        s.receive(.hello(Hello(nodeID: "n", authToken: "good", streamID: 1)), nowNs: 0)
        _ = s.takeOutgoing()
        let half = UInt64(StoreScratch.maxKept / 2)
        s.receive(batch(1, 1...half, cpu: 0), nowNs: 1)
        s.receive(batch(1, (half + 1)...(2 * half + 10), cpu: 0), nowNs: 1)
        s.flushAcks()
        #expect(s.takeOutgoing() == [.ack(Ack(streamID: 1, durableSeq: 2 * half + 10))])
        #expect(f.sink.appended.count == Int(2 * half + 10))
        #expect(f.scratch.joined.capacity <= StoreScratch.maxKept)
        #expect(f.scratch.judgement.scores.capacity <= StoreScratch.maxKept)

        // Within the bound the room stays for the next read.
        s.receive(batch(1, (2 * half + 11)...(2 * half + 20), cpu: 0), nowNs: 2)
        s.receive(batch(1, (2 * half + 21)...(2 * half + 30), cpu: 0), nowNs: 2)
        s.flushAcks()
        let kept = f.scratch.joined.capacity
        #expect(kept >= 20)
        s.receive(batch(1, (2 * half + 31)...(2 * half + 35), cpu: 0), nowNs: 3)
        s.receive(batch(1, (2 * half + 36)...(2 * half + 40), cpu: 0), nowNs: 3)
        s.flushAcks()
        #expect(f.scratch.joined.capacity == kept)
        #expect(f.sink.appended.suffix(20).map(\.sample.seq) == Array((2 * half + 21)...(2 * half + 40)))
    }
}
