import Glibc
import GridMonCore
import GridMonDetect
import GridMonFlood
import GridMonPosix
import GridMonWire

/// The live detector's cost per sample once nodes are judged (issue #17, idle cost): `nodes`
/// nodes each fit their own temporal detector on `warmup` samples, then every node sends one
/// sample in turn, as a fleet at one sample per second does. With thousands of nodes each
/// sample meets its detector cold in cache, unlike one node scored over and over (`hot`).
///
/// Prints `swift detector_cold ns_per_op=…` (one sample per node in turn),
/// `swift detector_hot ns_per_op=…` (one node's samples back to back) and the detectors'
/// bytes per node. Single thread (fits on the bank's trainer thread); medians of thread CPU.
/// `extraGauges` adds that many gauges shaped like the agent's (`AgentGauges`) to every
/// sample, so each node's detector has 8 + `extraGauges` metrics, as a real agent's node has.
struct DetectorBenchmark {
    let rounds: Int
    let nodes: Int
    let warmup: Int
    let extraGauges: Int
    /// Trees per metric (the server's `--node-trees`, default 16).
    let trees: Int

    func run() {
        var options = LiveDetectorOptions()
        options.warmup = warmup
        options.detector.trees = trees
        let bank = DetectorBank(options: options, prior: nil, maxNodes: nodes, incidents: IncidentBook(), firstID: 1)
        bank.start()
        defer { bank.stop() }
        let keys = (0..<nodes).map { NodeKey(tenant: "bench", node: "node-\($0)") }
        let extraNames = AgentGauges.names(extraGauges)
        var walks = (0..<nodes).map { Walk(seed: UInt64($0), extraNames: extraNames) }
        var judgement = Judgement()
        var seq: UInt64 = 0
        func turn() {
            seq += 1
            for n in 0..<nodes {
                blackHole(bank.judge([walks[n].next(seq: seq)], key: keys[n], into: &judgement))
            }
        }
        // Learn, then wait for the trainer to fit every node (each queued once at its
        // warm-up), sending nothing meanwhile: every node is judged on exactly `warmup` rows of
        // history, however long the fits take, so two builds' runs hold the same memory.
        for _ in 0..<warmup { turn() }
        let deadline = Clock.monotonicNanos() + 600_000_000_000
        while bank.fits.load(ordering: .relaxed) < UInt64(nodes) {
            guard Clock.monotonicNanos() < deadline else {
                return print("gridmon-bench detectors: only \(bank.fits.load(ordering: .relaxed)) of \(nodes) fits after 600 s")
            }
            usleep(20_000)
        }
        let footprint = bank.footprint()
        let cold = measure(rounds: rounds, millis: 300, opsPerCall: nodes) { turn() }
        print("swift detector_cold ns_per_op=\(cold.nsPerOp) ops=\(cold.ops) nodes=\(nodes) extra_gauges=\(extraGauges) trees=\(trees)")
        let one = keys[0]
        let hot = measure(rounds: rounds, millis: 300) {
            seq += 1
            blackHole(bank.judge([walks[0].next(seq: seq)], key: one, into: &judgement))
        }
        print("swift detector_hot ns_per_op=\(hot.nsPerOp) ops=\(hot.ops)")
        print("detector_bytes_per_node \(footprint.bytes / max(footprint.nodes, 1)) nodes=\(footprint.nodes)")
    }
}

/// A node's gauges as slow random walks with noise, seeded per node (deterministic).
private struct Walk {
    var random: SplitMix64
    var level: (Double, Double, Double, Double)
    let extraNames: [String]

    init(seed: UInt64, extraNames: [String]) {
        self.extraNames = extraNames
        random = SplitMix64(seed: seed &+ 0x5EED)
        level = (20 + Double(seed % 50), 40 + Double(seed % 30), 50, 1)
    }

    mutating func next(seq: UInt64) -> Sample {
        func noise(_ r: inout SplitMix64) -> Double { r.nextUnit() - 0.5 }
        level.0 = min(100, max(0, level.0 + noise(&random)))
        level.1 = min(100, max(0, level.1 + 0.1 * noise(&random)))
        level.2 = min(100, max(0, level.2 + 0.01 * noise(&random)))
        level.3 = max(0, level.3 + 0.1 * noise(&random))
        var sample = Sample(seq: seq, timestampNs: Int64(seq) * 1_000_000_000, cpuPercent: level.0 + 5 * noise(&random),
                      memoryPercent: level.1, diskPercent: level.2, load1: level.3,
                      netRxBytesPerSec: 1e5 * (1 + noise(&random)), netTxBytesPerSec: 5e4 * (1 + noise(&random)),
                      diskReadBytesPerSec: 1e4 * (1 + noise(&random)), diskWriteBytesPerSec: 2e4 * (1 + noise(&random)))
        if !extraNames.isEmpty {
            // The agent-shaped values, with noise so no node's columns are alike.
            sample.extra = AgentGauges.gauges(extraNames, seq: seq).map { Gauge(name: $0.name, value: $0.value * (1 + 0.02 * noise(&random))) }
        }
        return sample
    }
}
