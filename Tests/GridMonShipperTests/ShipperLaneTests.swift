import Testing
@testable import GridMonShipper

/// A record of `lines` lines `m,r=<number> v=<i>i <i>` (so a body shows which lines it holds).
private func record(_ number: UInt64, lines: Int = 2) -> ShipperLane.Record {
    let text = (0..<lines).map { "m,r=\(number) v=\($0)i \($0)\n" }.joined()
    return ShipperLane.Record(number: number, lines: Array(text.utf8), lineCount: lines)
}

private func text(_ body: [UInt8]?) -> String { body.map { String(decoding: $0, as: UTF8.self) } ?? "nil" }

private let second: UInt64 = 1_000_000_000

@Suite struct ShipperLaneTests {
    @Test func aBatchClosesOnSizeOrOnTimeAndHoldsWholeRecords() throws {
        let t0 = 100 * second
        var lane = ShipperLane(tenant: "t", intervalNs: second)
        lane.offer(record(1, lines: 3), failingBytes: 1 << 20)
        let request1 = lane.nextRequest(nowNs: t0, batchLines: 5)
        let first = try #require(request1)  // long after "never"
        #expect(lane.pieceWritten(first.delivery) == 3)
        lane.offer(record(2, lines: 3), failingBytes: 1 << 20)
        let request2 = lane.nextRequest(nowNs: t0 + second / 2, batchLines: 5)
        #expect(request2 == nil)  // waits for size or time
        lane.offer(record(3, lines: 3), failingBytes: 1 << 20)
        // 6 lines waiting ≥ 5: a batch goes, made of whole records up to the limit (record 2 only).
        let request3 = lane.nextRequest(nowNs: t0 + second / 2, batchLines: 5)
        let second2 = try #require(request3)
        let lines = text(second2.body).split(separator: "\n")
        #expect(lines.count == 3 && lines.allSatisfy { $0.hasPrefix("m,r=2 ") })
        let request4 = lane.nextRequest(nowNs: t0 + second / 2, batchLines: 5)
        #expect(request4 == nil)  // concurrency 1: one at a time
        #expect(lane.pieceWritten(second2.delivery) == 3)
        #expect(lane.deliveredThrough == 2 && lane.oldestUndelivered == 3)
        let request5 = lane.nextRequest(nowNs: t0 + second, batchLines: 5)
        #expect(request5 == nil)  // half an interval since the last post
        let request6 = lane.nextRequest(nowNs: t0 + 2 * second, batchLines: 5)
        let third = try #require(request6)  // the interval passed
        #expect(lane.pieceWritten(third.delivery) == 3 && lane.deliveredThrough == 3 && lane.oldestUndelivered == nil)
    }

    @Test func recordsWithoutLinesAreDeliveredWithoutARequest() throws {
        let t0 = 100 * second
        var lane = ShipperLane(tenant: "t", intervalNs: second)
        lane.offer(record(1, lines: 0), failingBytes: 1 << 20)
        lane.offer(record(2, lines: 0), failingBytes: 1 << 20)
        #expect(lane.pendingRecords == 2)
        // Nothing to post (an empty body would be split for ever if refused): delivered as is.
        let none = lane.nextRequest(nowNs: t0, batchLines: 5)
        #expect(none == nil)
        #expect(lane.deliveredThrough == 2 && lane.oldestUndelivered == nil && lane.pendingRecords == 0)
        lane.offer(record(3, lines: 2), failingBytes: 1 << 20)
        let next = lane.nextRequest(nowNs: t0 + 2 * second, batchLines: 5)
        let request = try #require(next)
        #expect(lane.pendingRecords == 1)
        #expect(lane.pieceWritten(request.delivery) == 2 && lane.deliveredThrough == 3 && lane.pendingRecords == 0)
    }

    @Test func rejectedBatchesAreHalvedUntilTheBadLineStandsAloneAndTheRestIsDelivered() {
        var lane = ShipperLane(tenant: "t", intervalNs: 0)
        for number: UInt64 in 1...4 { lane.offer(record(number), failingBytes: 1 << 20) }  // 8 lines
        var sent = 0
        var deadLettered: [String] = []
        var written = 0
        // InfluxDB refuses any body holding the line of record 3 with v=1.
        let bad = "m,r=3 v=1i 1\n"
        while let (delivery, body) = lane.nextRequest(nowNs: 0, batchLines: 100) {
            sent += 1
            if text(body).contains(bad) {
                if let line = lane.pieceRejected(delivery) { deadLettered.append(text(line)) }
            } else {
                written += lane.pieceWritten(delivery)
            }
        }
        #expect(deadLettered == [bad])
        #expect(written == 7)
        #expect(sent == 7)  // 8 → 4 → 2 → 1: the whole, then halves down to the bad line, each good half once
        #expect(lane.deliveredThrough == 4 && lane.deliveries.isEmpty)
    }

    @Test func concurrentBatchesMayFinishInAnyOrderButDeliveredOnlyMovesOverAllDelivered() throws {
        var lane = ShipperLane(tenant: "t", intervalNs: 0)
        for number: UInt64 in 1...6 { lane.offer(record(number), failingBytes: 1 << 20) }
        let request7 = lane.nextRequest(nowNs: 0, batchLines: 4, concurrency: 2)
        let a = try #require(request7)  // records 1-2
        let request8 = lane.nextRequest(nowNs: 0, batchLines: 4, concurrency: 2)
        let b = try #require(request8)  // records 3-4
        let request9 = lane.nextRequest(nowNs: 0, batchLines: 4, concurrency: 2)
        #expect(request9 == nil)
        #expect(lane.pieceWritten(b.delivery) == 4)
        #expect(lane.deliveredThrough == 0 && lane.oldestUndelivered == 1)  // 1-2 still out
        let request10 = lane.nextRequest(nowNs: 0, batchLines: 4, concurrency: 2)
        let c = try #require(request10)  // records 5-6
        #expect(text(c.body).contains("m,r=5 "))
        #expect(lane.pieceWritten(a.delivery) == 4)
        #expect(lane.deliveredThrough == 4 && lane.oldestUndelivered == 5)
        // A failure: the batch is kept and retried alone after the backoff, nothing new opens.
        lane.offer(record(7), failingBytes: 1 << 20)
        let delay = lane.failed(c.delivery, nowNs: 0, jitter: 0, failingBytes: 1 << 20)
        let request11 = lane.nextRequest(nowNs: UInt64(delay * 1e9) - 1, batchLines: 4, concurrency: 2)
        #expect(request11 == nil)
        let request12 = lane.nextRequest(nowNs: UInt64(delay * 1e9), batchLines: 4, concurrency: 2)
        let retry = try #require(request12)
        #expect(retry.delivery == c.delivery && retry.body == c.body)
        let request13 = lane.nextRequest(nowNs: UInt64(delay * 1e9), batchLines: 4, concurrency: 2)
        #expect(request13 == nil)  // one probe while failing
        #expect(lane.pieceWritten(c.delivery) == 4 && lane.deliveredThrough == 6)
    }

    @Test func aFailingLaneKeepsOnlyItsBoundInMemoryAndRemembersWhereItStopped() throws {
        var lane = ShipperLane(tenant: "t", intervalNs: 0)
        let size = record(1).lines.count
        for number: UInt64 in 1...10 { lane.offer(record(number), failingBytes: 3 * size) }
        let request14 = lane.nextRequest(nowNs: 0, batchLines: 4)
        let first = try #require(request14)  // records 1-2 in flight
        let delay = lane.failed(first.delivery, nowNs: 0, jitter: 0.5, failingBytes: 3 * size)
        #expect(lane.isFailing && delay > 0)
        // Records 3...10 were queued; only 3 records' worth stays, the rest is let go.
        #expect(lane.queuedBytes == 3 * size && lane.skippedFrom == 6)
        let queued11 = lane.offer(record(11), failingBytes: 3 * size)
        #expect(!queued11)  // behind: later records are skipped too
        #expect(lane.oldestUndelivered == 1)  // the batch in flight still counts
        let request15 = lane.nextRequest(nowNs: UInt64(delay * 1e9) / 2, batchLines: 4)
        #expect(request15 == nil)  // backing off
        // After the backoff the same batch goes again.
        let request16 = lane.nextRequest(nowNs: UInt64(delay * 1e9) + 1, batchLines: 4)
        let retry = try #require(request16)
        #expect(text(retry.body).contains("m,r=1 ") && text(retry.body).contains("m,r=2 "))
        #expect(lane.pieceWritten(retry.delivery) == 4 && !lane.isFailing)
        #expect(!lane.wantsCatchUp(nowNs: second * 100))  // records 3-5 are still queued
        for _ in 0..<2 {
            let request17 = lane.nextRequest(nowNs: second * 100, batchLines: 4)
            let request = try #require(request17)
            _ = lane.pieceWritten(request.delivery)
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

    @Test func backoffGrowsWithFailuresInARowUpToThirtySecondsAndRetryAfterWins() throws {
        var lane = ShipperLane(tenant: "t", intervalNs: 0)
        lane.offer(record(1), failingBytes: 1 << 20)
        var delays: [Double] = []
        var delivery: UInt64 = 0
        for _ in 0..<12 {
            let request18 = lane.nextRequest(nowNs: UInt64.max / 2, batchLines: 10)
            delivery = try #require(request18).delivery
            delays.append(lane.failed(delivery, nowNs: 0, jitter: 1, failingBytes: 1 << 20))
        }
        #expect(delays[0] == 0.4 && delays[1] == 0.8 && delays[2] == 1.6)
        #expect(delays.last == 30)
        _ = lane.nextRequest(nowNs: UInt64.max / 2, batchLines: 10)
        #expect(lane.failed(delivery, nowNs: 0, delaySeconds: 7, jitter: 1, failingBytes: 1 << 20) == 7)
        _ = lane.nextRequest(nowNs: UInt64.max / 2, batchLines: 10)
        #expect(lane.pieceWritten(delivery) == 2 && lane.failuresInARow == 0)
    }

    @Test func aTargetAnsweringAgainCutsTheBackoffShortButKeepsTheFailureCount() throws {
        var lane = ShipperLane(tenant: "t", intervalNs: 0)
        lane.offer(record(1), failingBytes: 1 << 20)
        var delivery: UInt64 = 0
        for _ in 0..<8 {
            let request = lane.nextRequest(nowNs: UInt64.max / 2, batchLines: 10)
            delivery = try #require(request).delivery
            _ = lane.failed(delivery, nowNs: 100 * second, jitter: 1, failingBytes: 1 << 20)
        }
        // 30 s of backoff from t = 100 s: nothing at t = 101 s, until the probe says the target is back.
        #expect(lane.nextRequest(nowNs: 101 * second, batchLines: 10) == nil)
        lane.resume(nowNs: 101 * second)
        let retried = lane.nextRequest(nowNs: 101 * second, batchLines: 10)
        #expect(retried?.delivery == delivery)
        #expect(lane.isFailing && lane.failuresInARow == 8)  // one request at a time until a write succeeds
        #expect(lane.pieceWritten(delivery) == 2 && !lane.isFailing)
    }
}
