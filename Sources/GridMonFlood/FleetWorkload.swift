import GridMonCore
import GridMonWire
#if canImport(Glibc)
import Glibc
#endif

/// The kinds of trouble the fleet simulator injects, each labelled so detection can be scored.
public enum Incident: String, CaseIterable, Sendable {
    /// The original GridMon simulator's short CPU spike to ~95 %.
    case cpuSpike = "cpu-spike"
    /// A stress test: every core at 100 % for a minute.
    case stressTest = "stress-test"
    /// Crypto-mining: sustained ~97 % CPU with memory flat.
    case cryptoMining = "crypto-mining"
    /// A memory leak: memory climbs steadily towards exhaustion.
    case memoryLeak = "memory-leak"
    /// A disk filling up.
    case diskFilling = "disk-filling"
    /// A network storm: traffic 1000× the node's usual.
    case networkStorm = "network-storm"

    /// Samples the incident lasts.
    var duration: UInt64 {
        switch self {
        case .cpuSpike: 5
        case .stressTest: 60
        case .cryptoMining: 300
        case .memoryLeak: 300
        case .diskFilling: 300
        case .networkStorm: 60
        }
    }
}

/// Samples whose ground truth is known: the fleet simulator, or a replayed labelled file.
public protocol LabelledWorkload: Sendable {
    func sample(node: String, seq: UInt64) -> Sample
    /// The labelled trouble `node` is in at `seq` (its kind, and the seq it started at), if any.
    func label(node: String, seq: UInt64) -> (kind: String, start: UInt64)?
    /// How many samples each node has to send (nil: as many as the run allows).
    var samplesPerNode: UInt64? { get }
}

/// A realistic simulated fleet, deterministic in (seed, node, seq): each node has its own
/// baseline, a daily cycle (`daySamples` per simulated day: 86,400 by default, matching the
/// samples' 1 s timestamps; the original's 1440 squeezed a day into 24 minutes) and noise; in each window of
/// 600 samples after the first a node starts an incident with probability `incidentRate`, at a
/// random offset. The first window is healthy: it is when the server learns each node's
/// baseline (300 samples by default), as a new agent on a machine in service would.
/// Stateless, so a sample resent after a reconnect is the same sample. Pure.
public struct FleetWorkload: LabelledWorkload {
    public let seed: UInt64
    public let incidentRate: Double
    static let window: UInt64 = 600
    /// Sample `seq` is at `epochNs + seq` seconds.
    public static let epochNs: Int64 = 1_767_225_600_000_000_000

    public let daySamples: UInt64

    public init(seed: UInt64, incidentRate: Double = 0.2, daySamples: UInt64 = 86_400) {
        self.seed = seed
        self.incidentRate = incidentRate
        self.daySamples = max(1, daySamples)
    }

    struct Baseline {
        let cpu, memory, disk, load, netRx, netTx, diskRead, diskWrite: Double
    }

    func baseline(_ node: String) -> Baseline {
        var rng = SplitMix64(seed: seed ^ FNV1a.hash(node))
        let cpu = 8 + 40 * rng.nextUnit()
        return Baseline(cpu: cpu, memory: 30 + 40 * rng.nextUnit(), disk: 20 + 55 * rng.nextUnit(), load: cpu / 25,
                        netRx: 50_000 + 2_000_000 * rng.nextUnit(), netTx: 20_000 + 1_000_000 * rng.nextUnit(),
                        diskRead: 10_000 + 500_000 * rng.nextUnit(), diskWrite: 20_000 + 800_000 * rng.nextUnit())
    }

    /// The incident `node` is in at `seq` (and when it started), if any.
    public func incident(node: String, seq: UInt64) -> (kind: Incident, start: UInt64)? {
        let window = seq / Self.window
        for w in [window, window &- 1] where w <= window && w >= 1 {
            var rng = SplitMix64(seed: seed ^ FNV1a.hash(node) ^ (w &* 0x9E37_79B9_7F4A_7C15))
            guard rng.nextUnit() < incidentRate else { continue }
            let kind = Incident.allCases[Int(rng.next() % UInt64(Incident.allCases.count))]
            let start = w * Self.window + rng.next() % (Self.window - kind.duration)
            if seq >= start && seq < start + kind.duration { return (kind, start) }
        }
        return nil
    }

    public func label(node: String, seq: UInt64) -> (kind: String, start: UInt64)? {
        incident(node: node, seq: seq).map { ($0.kind.rawValue, $0.start) }
    }

    public var samplesPerNode: UInt64? { nil }

    public func sample(node: String, seq: UInt64) -> Sample {
        let b = baseline(node)
        var noise = SplitMix64(seed: seed ^ FNV1a.hash(node) ^ seq &* 0xD1B5_4A32_D192_ED03)
        func jitter(_ scale: Double) -> Double { (noise.nextUnit() - 0.5) * 2 * scale }
        let daily = sin(Double(seq % daySamples) / Double(daySamples) * 2 * .pi)
        var cpu = b.cpu * (1 + 0.3 * daily) + jitter(3)
        var memory = b.memory + 2 * daily + jitter(1)
        var disk = b.disk + jitter(0.2)
        var netRx = b.netRx * (1 + 0.4 * daily + jitter(0.1))
        if let (kind, start) = incident(node: node, seq: seq) {
            let progress = Double(seq - start + 1) / Double(kind.duration)
            switch kind {
            case .cpuSpike: cpu = 95 + jitter(3)
            case .stressTest: cpu = 100
            case .cryptoMining: cpu = 97 + jitter(1)
            case .memoryLeak: memory += (99 - memory) * progress
            case .diskFilling: disk += (99.5 - disk) * progress
            case .networkStorm: netRx *= 1000
            }
        }
        let clamp = { (v: Double) in min(100, max(0, v)) }
        return Sample(seq: seq, timestampNs: Self.epochNs + Int64(seq) * 1_000_000_000,
                      cpuPercent: clamp(cpu), memoryPercent: clamp(memory), diskPercent: clamp(disk),
                      load1: max(0, b.load * (cpu / max(b.cpu, 1)) + jitter(0.1)), netRxBytesPerSec: max(0, netRx),
                      netTxBytesPerSec: b.netTx * (1 + jitter(0.1)), diskReadBytesPerSec: b.diskRead * (1 + jitter(0.2)),
                      diskWriteBytesPerSec: b.diskWrite * (1 + jitter(0.2)))
    }
}

/// Precision, recall and F1 of the server's verdicts against the simulator's labels, and how
/// long each incident type took to be noticed. Pure; fed from the acks.
public struct DetectionTally: Sendable {
    public var truePositives: UInt64 = 0
    public var falsePositives: UInt64 = 0
    public var falseNegatives: UInt64 = 0
    public var trueNegatives: UInt64 = 0
    /// Per incident type: incidents seen, incidents detected, and the sum of detection delays
    /// (samples from the incident's start to its first flagged sample).
    public var byType: [String: (incidents: Int, detected: Int, delaySum: UInt64)] = [:]
    private var seenIncidents: Set<String> = []
    private var detectedIncidents: Set<String> = []

    public init() {}

    public mutating func record(node: String, seq: UInt64, flagged: Bool, incident: (kind: String, start: UInt64)?) {
        switch (incident != nil, flagged) {
        case (true, true): truePositives += 1
        case (false, true): falsePositives += 1
        case (true, false): falseNegatives += 1
        case (false, false): trueNegatives += 1
        }
        guard let incident else { return }
        let key = "\(node)#\(incident.start)"
        var entry = byType[incident.kind] ?? (0, 0, 0)
        if seenIncidents.insert(key).inserted { entry.incidents += 1 }
        if flagged && detectedIncidents.insert(key).inserted {
            entry.detected += 1
            entry.delaySum += seq - incident.start
        }
        byType[incident.kind] = entry
    }

    public var precision: Double { truePositives + falsePositives == 0 ? 0 : Double(truePositives) / Double(truePositives + falsePositives) }
    public var recall: Double { truePositives + falseNegatives == 0 ? 0 : Double(truePositives) / Double(truePositives + falseNegatives) }
    public var f1: Double { precision + recall == 0 ? 0 : 2 * precision * recall / (precision + recall) }

    /// A verdict that arrived after its sample was counted as not flagged: the server splits
    /// an Ack of more than 10,000 verdicts into several with the same durable seq, and the
    /// samples are counted with the first. The sample counts as flagged instead.
    public mutating func flaggedLate(node: String, seq: UInt64, incident: (kind: String, start: UInt64)?) {
        if incident != nil {
            guard falseNegatives > 0 else { return }
            falseNegatives -= 1
        } else {
            guard trueNegatives > 0 else { return }
            trueNegatives -= 1
        }
        record(node: node, seq: seq, flagged: true, incident: incident)
    }
}
