import Testing
@testable import GridMonServer

/// A record of `lines` lines named `r<number>-<i>` (so a body shows which lines it holds).
private func record(_ number: UInt64, lines: Int = 2) -> ShipperLane.Record {
    let text = (0..<lines).map { "m,r=\(number) v=\($0)i \($0)\n" }.joined()
    return ShipperLane.Record(number: number, lines: Array(text.utf8), lineCount: lines)
}

private func text(_ body: [UInt8]?) -> String { body.map { String(decoding: $0, as: UTF8.self) } ?? "nil" }

private let second: UInt64 = 1_000_000_000

@Suite struct ShipperLaneTests {
    @Test func aBatchClosesOnSizeOrOnTimeAndHoldsWholeRecords() {
        let t0 = 100 * second
        var lane = ShipperLane(tenant: "t", intervalNs: second)
        lane.offer(record(1, lines: 3), failingBytes: 1 << 20)
        #expect(lane.nextRequest(nowNs: t0, batchLines: 5) != nil)  // first post: long after "never"
        #expect(lane.pieceWritten() == 3)
        lane.offer(record(2, lines: 3), failingBytes: 1 << 20)
        #expect(lane.nextRequest(nowNs: t0 + second / 2, batchLines: 5) == nil)  // waits for size or time
        lane.offer(record(3, lines: 3), failingBytes: 1 << 20)
        // 6 lines waiting ≥ 5: a batch goes, made of whole records up to the limit (record 2 only).
        let body = lane.nextRequest(nowNs: t0 + second / 2, batchLines: 5)
        #expect(text(body).split(separator: "\n").count == 3 && text(body).split(separator: "\n").allSatisfy { $0.hasPrefix("m,r=2 ") })
        #expect(lane.nextRequest(nowNs: t0 + second / 2, batchLines: 5) == nil)  // one request at a time
        #expect(lane.pieceWritten() == 3)
        #expect(lane.deliveredThrough == 2 && lane.oldestUndelivered == 3)
        #expect(lane.nextRequest(nowNs: t0 + second, batchLines: 5) == nil)  // half an interval since the last post
        #expect(lane.nextRequest(nowNs: t0 + 2 * second, batchLines: 5) != nil)  // the interval passed
        #expect(lane.pieceWritten() == 3 && lane.deliveredThrough == 3 && lane.oldestUndelivered == nil)
    }

    @Test func rejectedBatchesAreHalvedUntilTheBadLineStandsAloneAndTheRestIsDelivered() {
        var lane = ShipperLane(tenant: "t", intervalNs: 0)
        for number: UInt64 in 1...4 { lane.offer(record(number), failingBytes: 1 << 20) }  // 8 lines
        var sent: [String] = []
        var deadLettered: [String] = []
        var written = 0
        // InfluxDB refuses any body holding the line of record 3 with v=1.
        let bad = "m,r=3 v=1i 1\n"
        while let body = lane.nextRequest(nowNs: 0, batchLines: 100) {
            sent.append(text(body))
            if text(body).contains(bad) {
                if let line = lane.pieceRejected() { deadLettered.append(text(line)) }
            } else {
                written += lane.pieceWritten()
            }
        }
        #expect(deadLettered == [bad])
        #expect(written == 7)
        #expect(sent.count == 7)  // 8 → 4 → 2 → 1: the whole, then halves down to the bad line, each good half once
        #expect(lane.deliveredThrough == 4 && lane.delivery == nil)
    }

    @Test func aFailingLaneKeepsOnlyItsBoundInMemoryAndRemembersWhereItStopped() {
        var lane = ShipperLane(tenant: "t", intervalNs: 0)
        let size = record(1).lines.count
        for number: UInt64 in 1...10 { lane.offer(record(number), failingBytes: 3 * size) }
        #expect(lane.nextRequest(nowNs: 0, batchLines: 4) != nil)  // records 1-2 in flight
        let delay = lane.failed(nowNs: 0, jitter: 0.5, failingBytes: 3 * size)
        #expect(lane.isFailing && delay > 0)
        // Records 3...10 were queued; only 3 records' worth stays, the rest is let go.
        #expect(lane.queuedBytes == 3 * size && lane.skippedFrom == 6)
        let queued11 = lane.offer(record(11), failingBytes: 3 * size)
        #expect(!queued11)  // behind: later records are skipped too
        #expect(lane.oldestUndelivered == 1)  // the batch in flight still counts
        #expect(lane.nextRequest(nowNs: UInt64(delay * 1e9) / 2, batchLines: 4) == nil)  // backing off
        // After the backoff the same batch goes again.
        let retry = lane.nextRequest(nowNs: UInt64(delay * 1e9) + 1, batchLines: 4)
        #expect(text(retry).contains("m,r=1 ") && text(retry).contains("m,r=2 "))
        #expect(lane.pieceWritten() == 4 && !lane.isFailing)
        #expect(!lane.wantsCatchUp(nowNs: second * 100))  // records 3-5 are still queued
        for _ in 0..<2 {
            _ = lane.nextRequest(nowNs: second * 100, batchLines: 4)
            _ = lane.pieceWritten()
        }
        #expect(lane.deliveredThrough == 5 && lane.wantsCatchUp(nowNs: second * 100))
        // Catch-up read records 6...9 (record 7 is another tenant's); the shared reader is at 12.
        lane.caughtUp([record(6), record(8), record(9)], readThrough: 9, sharedNext: 12)
        #expect(lane.skippedFrom == 10 && lane.oldestUndelivered == 6)
        lane.caughtUp([record(10), record(11)], readThrough: 11, sharedNext: 12)
        #expect(lane.skippedFrom == nil)  // rejoined the shared reader
        let queued12 = lane.offer(record(12), failingBytes: 3 * size)
        #expect(queued12)
    }

    @Test func recordsDeliveredBeforeARestartAreNotSentAgain() {
        var lane = ShipperLane(tenant: "t", deliveredThrough: 7, intervalNs: 0)
        let accepted = lane.offer(record(6), failingBytes: 1 << 20)
        #expect(accepted && lane.queuedRecords == 0)
        lane.offer(record(8), failingBytes: 1 << 20)
        #expect(lane.queuedRecords == 1 && lane.oldestUndelivered == 8)
    }

    @Test func backoffGrowsWithFailuresInARowUpToThirtySecondsAndRetryAfterWins() {
        var lane = ShipperLane(tenant: "t", intervalNs: 0)
        lane.offer(record(1), failingBytes: 1 << 20)
        var delays: [Double] = []
        for _ in 0..<12 {
            _ = lane.nextRequest(nowNs: UInt64.max / 2, batchLines: 10)
            delays.append(lane.failed(nowNs: 0, jitter: 1, failingBytes: 1 << 20))
        }
        #expect(delays[0] == 0.4 && delays[1] == 0.8 && delays[2] == 1.6)
        #expect(delays.last == 30)
        _ = lane.nextRequest(nowNs: UInt64.max / 2, batchLines: 10)
        #expect(lane.failed(nowNs: 0, delaySeconds: 7, jitter: 1, failingBytes: 1 << 20) == 7)
        _ = lane.nextRequest(nowNs: UInt64.max / 2, batchLines: 10)
        #expect(lane.pieceWritten() == 2 && lane.failuresInARow == 0)
    }
}
