import Foundation
import GridMonCore
import GridMonStore
import GridMonWire
import Synchronization
import Testing
@testable import GridMonServer

/// The embedded store on real files in a temporary directory: what it acknowledges is on disk
/// and found again by the next start, and a stream's samples are cut into bounded records.
@Suite struct OutboxSinkTests {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gridmon-sink-\(UUID())").path
    let key = NodeKey(tenant: "acme", node: "n1")

    private func scored(_ seqs: ClosedRange<UInt64>, extra: [Gauge] = []) -> ScoredSamples {
        let samples = seqs.map { Sample(seq: $0, timestampNs: 1_767_225_600_000_000_000 + Int64($0) * 1_000_000_000,
                                        cpuPercent: Double($0 % 100), extra: extra) }
        return ScoredSamples(samples: samples, scores: samples.map { _ in 0.25 }, flagged: samples.map { $0.seq == seqs.upperBound })
    }

    private func record() -> NodeRecord { NodeRecord(key: key, state: NodeState(tenant: "acme", labels: [])) }

    /// Every record in the outbox, decoded, in order.
    private func records(_ sink: OutboxSink) throws -> [OutboxBatch] {
        try sink.outbox.read(from: 1, limit: 10_000).map { try OutboxBatch(decoding: $0.1[...]) }
    }

    /// Polls `condition` for up to 10 s (the committer's thread makes it true).
    private func eventually(_ condition: () -> Bool) -> Bool {
        for _ in 0..<1000 where !condition() { usleep(10_000) }
        return condition()
    }

    @Test func whatTheCommitterMakesDurableIsAcknowledgedOnceAndFoundAgainAtTheNextStart() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let node = record()
        let told = Mutex<[UInt64]>([])
        do {
            let sink = try OutboxSink(directory: directory)
            let stream = StreamSeries(node: "n1", tenant: "acme", labels: [Label(key: "rack", value: "b12")])
            let ticket = sink.append(scored(1...10), series: stream, record: node, highestSeq: 10)
            // Nothing is durable, nor said to be, before a commit.
            #expect(sink.durableTicket < ticket && node.state.durableSeq == 0 && sink.queuedSamples == 10)
            sink.start { durable in told.withLock { $0.append(durable) } }
            #expect(eventually { sink.durableTicket >= ticket })
            #expect(node.state.durableSeq == 10 && sink.queuedSamples == 0)
            #expect(told.withLock { $0 } == [ticket])  // once, with the ticket that covers it
            // Appended after the last commit, left to `stop` (the server's shutdown) to commit.
            let last = sink.append(scored(11...12), series: stream, record: node, highestSeq: 12)
            sink.stop()
            #expect(sink.durableTicket >= last && node.state.durableSeq == 12)
            let stored = try records(sink)
            #expect(stored.map(\.highestSeq) == [10, 12] && stored.map(\.sampleCount) == [10, 2])
            let lines = String(decoding: stored[0].lines, as: UTF8.self).split(separator: "\n")
            #expect(lines.count == 10 && lines.allSatisfy { $0.hasPrefix("system_metrics,host=n1,") && $0.contains("rack=b12") })
            #expect(lines.last?.contains("anomaly_detected=1i") == true && lines.first?.contains("anomaly_detected=0i") == true)
        }
        // The next start (the lock released with the sink) knows each node's durable seq.
        let again = try OutboxSink(directory: directory)
        #expect(again.restoredNodes == [key: 12])
        #expect(again.durableTicket == 2)
    }

    @Test func aStreamsSamplesAreCutIntoRecordsOfAtMostFourMiB() throws {
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let sink = try OutboxSink(directory: directory)
        let stream = StreamSeries(node: "n1", tenant: "acme", labels: [])
        // 200 fractional gauges a sample (8 bytes each packed, ~1.8 KB a sample): 3,000
        // samples are ~5.4 MB packed, more than one record holds.
        let extra = (0..<200).map { Gauge(name: "g\($0)", value: Double($0) + 0.5) }
        let count: UInt64 = 3_000
        _ = sink.append(scored(1...count, extra: extra), series: stream, record: record(), highestSeq: count)
        sink.start { _ in }
        sink.stop()
        let stored = try records(sink)
        #expect(stored.count >= 2, "\(stored.count) records")
        #expect(stored.allSatisfy { ($0.packed?.byteCount ?? .max) < OutboxSink.maxRecordLineBytes + 8 * 1024 })
        #expect(stored.map(\.sampleCount).reduce(0, +) == Int(count))
        #expect(stored.last?.highestSeq == count && stored.map(\.highestSeq) == stored.map(\.highestSeq).sorted())
    }
}
