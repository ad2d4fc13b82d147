import GridMonCore
import GridMonWire
import Testing
@testable import GridMonStore

/// Issue #17, item 2: the outbox keeps samples packed and makes their lines when they are read;
/// the lines must be byte for byte the ones the server wrote before, and the drops the same.
@Suite struct PackedSamplesTests {
    static let series = Array("system_metrics,host=web-1,tenant=acme,rack=r\\ 1".utf8)

    /// Samples with everything line protocol must leave out: NaN and ±Inf gauges and scores,
    /// unwritable, reserved and repeated extra names, and many extras (the set path).
    static func samples() -> [(sample: Sample, score: Double, anomalous: Bool)] {
        var rng = SplitMix64(seed: 11)
        // (Whole numbers up to 2⁵³ are packed as varints, the rest as f64: both sides of each bound.)
        let specials: [Double] = [.nan, .infinity, -.infinity, 0, -0.0, 1e-300, 1e300, 12.5, -5, 31, 32, -32, 4095, 4096,
                                  9_007_199_254_740_992, -9_007_199_254_740_992, 9_007_199_254_740_994, 1e18, -1e19]
        return (0..<200).map { i in
            func value() -> Double {
                switch rng.next() % 4 {
                case 0: specials[Int(rng.next() % UInt64(specials.count))]
                case 1: Double(Int64(bitPattern: rng.next()) >> Int64(rng.next() % 64))  // whole numbers of every size
                default: rng.nextUnit() * 100
                }
            }
            var extras: [Gauge] = []
            let count = i % 10 == 0 ? 40 : Int(rng.next() % 6)
            for k in 0..<count {
                let names = ["temp_\(k % 23)", "fan", "bad name\n", "cpu", "disk_write", "", "_x", "é_load"]
                extras.append(Gauge(name: k % 5 == 0 ? names[Int(rng.next() % UInt64(names.count))] : "g\(k)", value: value()))
            }
            let sample = Sample(seq: UInt64(i + 1), timestampNs: 1_700_000_000_000_000_000 + Int64(i) * 1_000_000_000,
                                cpuPercent: value(), memoryPercent: value(), diskPercent: value(), load1: value(),
                                netRxBytesPerSec: value(), netTxBytesPerSec: value(), diskReadBytesPerSec: value(),
                                diskWriteBytesPerSec: value(), extra: extras)
            return (sample, i % 13 == 0 ? .nan : rng.nextUnit(), i % 3 == 0)
        }
    }

    @Test func linesAndDropsAreTheOnesTheLineEncoderMakes() {
        var expected: [UInt8] = []
        var expectedDrops = LineProtocolDrops()
        var packed = PackedSamples()
        var drops = LineProtocolDrops()
        for item in Self.samples() {
            expected += Self.series
            SystemMetrics.appendLineTail(item, to: &expected, drops: &expectedDrops)
            packed.append(item.sample, score: item.score, anomalous: item.anomalous, drops: &drops)
        }
        var lines: [UInt8] = []
        #expect(packed.appendLines(series: Self.series, to: &lines))
        #expect(String(decoding: lines, as: UTF8.self) == String(decoding: expected, as: UTF8.self))
        #expect(drops == expectedDrops)
        #expect(drops.nonFiniteFields > 0 && drops.badNames > 0)
    }

    /// A stream keeps one `ExtraGaugePlan` from record to record: samples whose names are the
    /// last sample's are not judged again, and every record's lines, drops and bytes are what
    /// packing each sample with a fresh plan gives — names changing, coming back, in another
    /// order, repeated, reserved, unwritable.
    @Test func aPlanKeptAcrossRecordsChangesNothingButTheWork() {
        var rng = SplitMix64(seed: 3)
        // Runs of samples with the same names (as an agent sends them), the runs in random shapes.
        var items: [(sample: Sample, score: Double, anomalous: Bool)] = []
        let shapes: [[String]] = [
            ["cpu_usage_user", "net_bytes_recv_per_s.eth0", "disk_used_percent./"],
            ["net_bytes_recv_per_s.eth0", "cpu_usage_user", "disk_used_percent./"],
            ["cpu_usage_user", "cpu", "bad name\n", "cpu_usage_user", "fan", "_x"],
            [], (0..<40).map { "g\($0 % 30)" },
        ]
        for run in Self.samples().enumerated() {
            let names = run.offset % 4 == 3 ? run.element.sample.extra.map(\.name) : shapes[Int(rng.next() % UInt64(shapes.count))]
            for k in 0..<Int(1 + rng.next() % 5) {
                var sample = run.element.sample
                sample.seq = UInt64(items.count + 1)
                // Equal names, as the same strings (a decoder's cache) or as new ones.
                sample.extra = names.enumerated().map { i, name in
                    Gauge(name: k % 2 == 0 ? name : String(decoding: Array(name.utf8), as: UTF8.self), value: Double(i * k) + 0.5)
                }
                items.append((sample, run.element.score, run.element.anomalous))
            }
        }
        var plan = ExtraGaugePlan()
        var start = 0
        while start < items.count {
            let end = min(items.count, start + Int(1 + rng.next() % 7))
            var kept = PackedSamples(), fresh = PackedSamples()
            var keptDrops = LineProtocolDrops(), freshDrops = LineProtocolDrops()
            for item in items[start..<end] {
                kept.append(item.sample, score: item.score, anomalous: item.anomalous, drops: &keptDrops, plan: &plan)
                fresh.append(item.sample, score: item.score, anomalous: item.anomalous, drops: &freshDrops)
            }
            #expect(kept == fresh && keptDrops == freshDrops)
            var expected: [UInt8] = [], lines: [UInt8] = []
            var expectedDrops = LineProtocolDrops()
            for item in items[start..<end] {
                expected += Self.series
                SystemMetrics.appendLineTail(item, to: &expected, drops: &expectedDrops)
            }
            #expect(kept.appendLines(series: Self.series, to: &lines))
            #expect(lines == expected && keptDrops == expectedDrops)
            start = end
        }
        // Judged once per change of names, not once per sample.
        let changes = zip(items.dropFirst(), items).filter { $0.0.sample.extra.map(\.name) != $0.1.sample.extra.map(\.name) }.count
        #expect(plan.judged == changes + (items[0].sample.extra.isEmpty ? 0 : 1) && plan.judged * 2 < items.count)
    }

    /// A plan keeps a stream's names from one sample to the next only up to its bounds: a
    /// peer's 3,000 names, or a few enormous ones, are forgotten by `trim` and judged afresh.
    @Test func aPlanForgetsListsPastItsBounds() {
        var plan = ExtraGaugePlan()
        let agent = (0..<42).map { Gauge(name: "gauge_with_a_longer_name_\($0)", value: 1) }
        plan.update(for: agent)
        plan.trim()
        plan.update(for: agent)
        #expect(plan.judged == 1 && plan.names.count == 42)

        for many in [(0..<ExtraGaugePlan.maxKeptNames + 1).map { Gauge(name: "g\($0)", value: 1) },
                     (0..<3).map { Gauge(name: String(repeating: "x", count: ExtraGaugePlan.maxKeptNameBytes / 2) + "\($0)", value: 1) }] {
            let before = plan.judged
            plan.update(for: many)
            #expect(plan.verdicts.count == many.count)
            plan.trim()
            #expect(plan.names.isEmpty && plan.verdicts.isEmpty)
            plan.update(for: many)
            #expect(plan.judged == before + 2)
            plan.trim()
        }
    }

    @Test func theBytesOfVersionThreeStayAsFirstWritten() {
        // The on-disk layout is pinned, not only what it decodes to: outboxes already written
        // (byte by byte through the array) must read the same after packing moved to one
        // block written through a pointer. The figures are the 0.16.0 packer's.
        var packed = PackedSamples()
        var drops = LineProtocolDrops()
        for item in Self.samples() { packed.append(item.sample, score: item.score, anomalous: item.anomalous, drops: &drops) }
        #expect(packed.bytes.count == 24_983 && packed.names.count == 43)
        #expect(CRC32C.checksum(packed.bytes) == 0x852A_2AE4)
    }

    @Test func versionThreeRecordsRoundTripAndRejectDamage() throws {
        var packed = PackedSamples()
        var drops = LineProtocolDrops()
        for item in Self.samples().prefix(20) { packed.append(item.sample, score: item.score, anomalous: item.anomalous, drops: &drops) }
        let batch = OutboxBatch(tenant: "acme", node: "web-1", highestSeq: 20, sampleCount: 20, series: Self.series, packed: packed)
        let bytes = batch.encode()
        #expect(bytes[0] == 3)
        let decoded = try OutboxBatch(decoding: bytes[...])
        #expect(decoded == batch && decoded.lines == batch.lines && !batch.lines.isEmpty)
        for cut in 0..<bytes.count {
            #expect(throws: OutboxBatch.DecodeError.self) { try OutboxBatch(decoding: bytes[..<cut]) }
        }
    }

    /// A record of the eight fixed gauges takes less than half of what the version-2 record
    /// (series once, line tails as text) of the same samples took.
    @Test func aPackedRecordIsSmallerThanItsLines() {
        var packed = PackedSamples()
        var tails: [UInt8] = []
        var drops = LineProtocolDrops()
        for i in 0..<64 {
            let sample = Sample(seq: UInt64(i + 1), timestampNs: 1_700_000_000_000_000_000 + Int64(i) * 1_000_000_000, cpuPercent: 12.34567,
                                memoryPercent: 45.6789, diskPercent: 70.1, load1: 0.73, netRxBytesPerSec: 123456.7,
                                netTxBytesPerSec: 65432.1, diskReadBytesPerSec: 4096, diskWriteBytesPerSec: 81920.5)
            packed.append(sample, score: 0.123456789, anomalous: false, drops: &drops)
            SystemMetrics.appendLineTail((sample, 0.123456789, false), to: &tails, drops: &drops)
        }
        let batch = OutboxBatch(tenant: "acme", node: "web-1", highestSeq: 64, sampleCount: 64, series: Self.series, packed: packed)
        let text = OutboxBatch(tenant: "acme", node: "web-1", highestSeq: 64, sampleCount: 64, series: Self.series, body: tails)
        #expect(batch.lines == text.lines)
        #expect(batch.encode().count * 2 < text.encode().count)
    }

    /// Records are CRC-checked, so a bad packed section means a format bug: the lines stop
    /// there, without a trap.
    @Test func aDamagedPackedSectionStopsTheLinesWithoutATrap() throws {
        var packed = PackedSamples()
        var drops = LineProtocolDrops()
        packed.append(Sample(seq: 1, timestampNs: 1, extra: [Gauge(name: "fan", value: 2)]), score: 0.5, anomalous: false, drops: &drops)
        var bytes = OutboxBatch(tenant: "t", node: "n", highestSeq: 1, sampleCount: 1, series: Self.series, packed: packed).encode()
        bytes[bytes.count - 3] = 2  // the extra count (before the 1-byte value 2): a second gauge, past the names and the bytes
        let damaged = try OutboxBatch(decoding: bytes[...])
        var lines: [UInt8] = []
        #expect(!damaged.packed!.appendLines(series: Self.series, to: &lines))
        #expect(lines.isEmpty)
    }
}
