import Foundation
import GridMonPosix
import GridMonServer
import GridMonWire
import Synchronization
import Testing

/// A sink whose queue depth the test sets, to drive the server's backpressure (a fake of the
/// sink only: the server, its sockets and the client are real).
final class GateSink: SampleSink {
    let queued = Atomic<Int>(0)
    let appended = Atomic<Int>(0)
    var notReadyReason: String? { nil }
    var queuedSamples: Int { queued.load(ordering: .relaxed) }
    var highWater: Int { 1000 }
    var lowWater: Int { 500 }
    var durableTicket: UInt64 { .max }
    func append(_ samples: ScoredSamples, series: StreamSeries, record: NodeRecord, highestSeq: UInt64) -> UInt64 {
        appended.add(samples.count, ordering: .relaxed)
        record.markDurable(highestSeq)
        return 0
    }
}

@Suite(.serialized) struct BackpressureTests {
    @Test func readingStopsAboveHighWaterAndResumesBelowLowWater() throws {
        let port = try freeLoopbackPort()
        var config = ServerConfig()
        config.listen = SocketAddress(host: "127.0.0.1", port: port)
        config.adminListen = nil
        config.threads = 1
        let sink = GateSink()
        let server = Server(config: config, authenticator: Authenticator(tokens: [:], insecure: true),
                            scorer: { UtilizationScorer() }, sink: sink)
        let done = Atomic<Bool>(false)
        let thread = Thread { try? server.run(); done.store(true, ordering: .releasing) }
        thread.start()
        defer {
            server.shutdown()
            for _ in 0..<500 where !done.load(ordering: .acquiring) { usleep(10_000) }
        }
        var client: TestClient?
        for _ in 0..<100 where client == nil { client = try? TestClient(config.listen); if client == nil { usleep(20_000) } }
        let agent = try #require(client)
        _ = try agent.hello(node: "bp", stream: 1)

        func ackedSeq(within millis: Int32) throws -> UInt64? {
            guard case .ack(let ack)? = try agent.receive(timeout: millis) else { return nil }
            return ack.durableSeq
        }
        try agent.send(batch(1, 1...10))
        #expect(try ackedSeq(within: 5000) == 10)

        // The sink's queue passes its high-water mark: the batch that is read is still
        // processed, then the server stops reading. (The pauses let the server finish the
        // check that follows each read before the queue depth changes under it.)
        usleep(100_000)
        sink.queued.store(1000, ordering: .relaxed)
        try agent.send(batch(1, 11...20))
        #expect(try ackedSeq(within: 5000) == 20)
        usleep(100_000)
        try agent.send(batch(1, 21...30))
        #expect(try ackedSeq(within: 300) == nil)
        #expect(sink.appended.load(ordering: .relaxed) == 20)

        // Above low water: still paused.
        sink.queued.store(600, ordering: .relaxed)
        #expect(try ackedSeq(within: 200) == nil)

        // Below low water: reading resumes and the held batch is acked.
        sink.queued.store(100, ordering: .relaxed)
        #expect(try ackedSeq(within: 5000) == 30)
        #expect(metric(server.metricsText(), "gridmon_backpressure_pauses_total") == 1)
        #expect(metric(server.metricsText(), "gridmon_sink_queue_samples") == 100)
    }
}
