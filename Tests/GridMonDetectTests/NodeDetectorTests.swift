import GridMonCore
@testable import GridMonDetect
import GridMonForest
import GridMonWire
import Testing

@Suite struct NodeDetectorTests {
    static let key = NodeKey(tenant: "acme", node: "web-1")

    /// A healthy node: CPU noise around 20 %, memory flat around 40 %, extras around 5.
    static func sample(_ seq: Int, cpu: Double? = nil, memory: Double? = nil) -> Sample {
        var rng = SplitMix64(seed: UInt64(seq))
        var s = Sample(seq: UInt64(seq), timestampNs: Int64(seq) * 1_000_000_000)
        s.cpuPercent = cpu ?? 20 + 4 * rng.nextUnit()
        s.memoryPercent = memory ?? 40 + rng.nextUnit()
        s.diskPercent = 30
        s.netRxBytesPerSec = 1000 + 100 * rng.nextUnit()
        s.extra = [Gauge(name: "queue_depth", value: 5 + rng.nextUnit())]
        return s
    }

    /// Feeds samples `range` one batch of 10 at a time, fitting synchronously when a job is due.
    static func feed(_ d: inout NodeDetector, _ samples: [Sample], prior: ConfiguredModel? = nil) -> (Judgement, [IncidentEvent]) {
        var all = Judgement()
        var events: [IncidentEvent] = []
        var next: UInt64 = 1
        var start = 0
        while start < samples.count {
            let end = min(start + 10, samples.count)
            var j = Judgement()
            events += d.observe(Array(samples[start..<end]), prior: prior, nextID: { defer { next += 1 }; return next }, into: &j)
            all.scores += j.scores
            all.flagged += j.flagged
            all.state = j.state
            if let job = d.takeJob() { d.install(DetectorBank.fit(job, options: d.options.detector)) }
            start = end
        }
        return (all, events)
    }

    @Test func learnsQuietlyThenJudgesWithExtraGauges() {
        var d = NodeDetector(key: Self.key, options: LiveDetectorOptions())
        let (learning, events) = Self.feed(&d, (1...299).map { Self.sample($0) })
        #expect(learning.state == .learning)
        #expect(!learning.flagged.contains(true))
        #expect(events.isEmpty)
        let (healthy, quiet) = Self.feed(&d, (300...900).map { Self.sample($0) })
        #expect(healthy.state == .active)
        #expect(d.metrics == MetricLayout.fixed + ["queue_depth"])
        #expect(quiet.isEmpty, "a healthy node opened \(quiet.count) incidents")
        #expect(d.byteCount > 0)
    }

    @Test func aMemoryLeakOpensOneIncidentDrivenByMemoryAndClosesAfterIt() {
        var d = NodeDetector(key: Self.key, options: LiveDetectorOptions())
        _ = Self.feed(&d, (1...1000).map { Self.sample($0) })
        // Memory climbs 40 → 90 % over 100 samples, then recovers.
        let leak = (1001...1100).map { Self.sample($0, memory: 40 + Double($0 - 1000) / 2) }
        let (_, opened) = Self.feed(&d, leak)
        let (_, closed) = Self.feed(&d, (1101...1200).map { Self.sample($0) })
        let all = opened + closed
        #expect(all.count == 2)
        guard case .opened(let incident)? = all.first, case .closed(let done)? = all.last else {
            Issue.record("expected an opening then a closing, got \(all)")
            return
        }
        #expect(incident.drivers.first?.metric == "memory")
        #expect(incident.drivers.first?.direction == "up")
        #expect(done.id == incident.id)
        #expect(done.endNs != nil && done.endNs! >= done.startNs)
        #expect(done.startNs >= 1001 * 1_000_000_000 && done.startNs < 1100 * 1_000_000_000)
    }

    /// The flagged samples that open an incident stay out of the history with it: one network
    /// storm's onset in a node's history once widened its range so far that the next storm,
    /// after a refit, went unseen (the fleet simulation missed one that way).
    @Test func theSamplesThatOpenAnIncidentNeverJoinTheHistory() {
        var options = LiveDetectorOptions()
        options.refitEvery = 200  // a refit between the storms
        var d = NodeDetector(key: Self.key, options: options)
        func storm(_ range: ClosedRange<Int>) -> [Sample] {
            range.map { var s = Self.sample($0); s.netRxBytesPerSec *= 1000; return s }
        }
        _ = Self.feed(&d, (1...900).map { Self.sample($0) })
        let (_, first) = Self.feed(&d, storm(901...960))
        _ = Self.feed(&d, (961...1400).map { Self.sample($0) })
        let (_, second) = Self.feed(&d, storm(1401...1460))
        #expect(first.contains { if case .opened = $0 { true } else { false } })
        #expect(second.contains { if case .opened = $0 { true } else { false } }, "the second storm opened nothing")
    }

    /// A node's history is capped in bytes: a peer that sends 200 gauges keeps fewer rows, not
    /// 200/9 times the memory.
    @Test func aWideNodesHistoryStaysWithinItsByteBudget() {
        var options = LiveDetectorOptions()
        options.warmup = 100_000  // no fit: byteCount is the history and the feature window
        options.maxHistoryBytes = 1 << 20
        var wide = NodeDetector(key: Self.key, options: options)
        func wideSample(_ seq: Int) -> Sample {
            var s = Self.sample(seq)
            s.extra = (0..<200).map { Gauge(name: "g\($0)", value: Double(($0 + seq) % 7)) }
            return s
        }
        _ = Self.feed(&wide, (1...3000).map(wideSample))
        #expect(wide.metrics.count == 64)  // --node-max-metrics' default
        #expect(wide.byteCount < (1 << 20) + (200 << 10), "\(wide.byteCount)")
        var narrow = NodeDetector(key: Self.key, options: options)
        _ = Self.feed(&narrow, (1...3000).map { Self.sample($0) })
        // Every row kept (it fits the budget), each of its 9 metrics with the 4 columns a fit
        // reads: value, delta, std, deviation (issue #17: not mean, which no fit reads).
        #expect(TemporalDetector.fitColumns(options.detector) == [0, 1, 3, 4])
        #expect(narrow.byteCount > 3000 * 9 * 4 * 4)
        // (4,096 rows of capacity once grown; with the fifth column they alone are this much.)
        #expect(narrow.byteCount < 4096 * 9 * 5 * 4, "\(narrow.byteCount): a fifth column kept")
        // What the trainer gets: the same 4 columns a metric, a row a sample.
        options.warmup = 50
        var young = NodeDetector(key: Self.key, options: options)
        var j = Judgement()
        _ = young.observe((1...50).map { Self.sample($0) }, prior: nil, nextID: { 1 }, into: &j)
        let job = young.takeJob()
        #expect(job?.rows == 50 && job?.features.count == 50 * 9 * 4)
    }

    /// A detector fit on fewer than `trustedRows` rows flags only at `provisionalFactor` × the
    /// threshold; the scores stored are the same.
    @Test func aProvisionalDetectorFlagsOnlyAtTheHigherThreshold() {
        func run(trustedRows: Int) -> Judgement {
            var options = LiveDetectorOptions()
            options.trustedRows = trustedRows
            var d = NodeDetector(key: Self.key, options: options)
            _ = Self.feed(&d, (1...1000).map { Self.sample($0) })
            // CPU drifts up and away: scores rise through the threshold and past twice it.
            return Self.feed(&d, (1001...1200).map { Self.sample($0, cpu: 20 + Double($0 - 1000) * 0.4) }).0
        }
        let provisional = run(trustedRows: 2048)  // every fit here is on < 1,200 rows
        let trusted = run(trustedRows: 0)
        #expect(provisional.scores == trusted.scores)
        let threshold = LiveDetectorOptions().detector.threshold
        let twice = TemporalDetector.score01(2 * threshold)  // the raw threshold, doubled
        for (score, flagged) in zip(provisional.scores, provisional.flagged) {
            #expect(flagged == (score >= twice))
        }
        let between = zip(trusted.scores, trusted.flagged).filter { $0.0 >= TemporalDetector.score01(threshold) && $0.0 < twice }
        #expect(!between.isEmpty && between.allSatisfy { $0.1 })  // the trusted one flags them
    }

    /// A peer's extreme gauge values (±1e308, past Float's range in the features) never trap
    /// the detector, and the node is judged with finite scores again once they have left the
    /// rolling window and its exact recomputation.
    @Test func extremeGaugeValuesNeverTrapTheDetector() {
        var d = NodeDetector(key: Self.key, options: LiveDetectorOptions())
        let samples = (1...3500).map { seq -> Sample in
            var s = Self.sample(seq)
            if seq == 400 || seq == 2600 { s.cpuPercent = 1e308 }
            if seq == 401 || seq == 2601 { s.memoryPercent = -1e308 }
            return s
        }
        let (judged, _) = Self.feed(&d, samples)
        #expect(judged.scores.count == 3500)
        #expect(judged.scores.suffix(200).allSatisfy { $0.isFinite && $0 >= 0 && $0 <= 1 })
        #expect(d.state == .active)
    }

    @Test func aConstantNodeGetsADegenerateDetectorThatNeverFlags() {
        // Every gauge constant (ASD's fixed gauges, an idle VM's disk): issue #11's degenerate model.
        var d = NodeDetector(key: Self.key, options: LiveDetectorOptions())
        let flat = (1...400).map { Sample(seq: UInt64($0), timestampNs: Int64($0) * 1_000_000_000) }
        let (j, events) = Self.feed(&d, flat)
        #expect(d.model?.isDegenerate == true)
        #expect(j.state == .off)
        #expect(!j.flagged.contains(true))
        #expect(events.isEmpty)
        // Once it moves, a refit learns it: the degenerate model did not freeze the history.
        let (_, _) = Self.feed(&d, (401...1300).map { Self.sample($0) })
        #expect(d.model?.isDegenerate == false)
    }

    /// A reloaded `--model` judges learning nodes from the next batch on (the node's stream of
    /// the old model is not kept).
    @Test func aReloadedConfiguredModelTakesOver() {
        let data = FeatureMatrix(columns: 1, rows: (0..<64).map { [Double($0 % 8)] })
        var flagsAll = IsolationForest.fit(data, features: ["cpu"], options: FitOptions())
        flagsAll.threshold = 0
        var flagsNone = flagsAll
        flagsNone.threshold = 2
        var d = NodeDetector(key: Self.key, options: LiveDetectorOptions())
        let (first, _) = Self.feed(&d, (1...10).map { Self.sample($0) }, prior: ConfiguredModel(.forest(flagsAll)))
        #expect(first.flagged == [Bool](repeating: true, count: 10))
        #expect(first.state == .learning)
        let (second, _) = Self.feed(&d, (11...20).map { Self.sample($0) }, prior: ConfiguredModel(.forest(flagsNone)))
        #expect(second.flagged == [Bool](repeating: false, count: 10))
    }
}
