import GridMonCore

/// GridMon's default global model: what a fresh server scores with from its first sample,
/// before any tenant or node model exists (the original GridMon shipped training_data.csv +
/// model.pkl for the same purpose).
///
/// Its training data is generated, not collected: a seeded simulation of a healthy fleet.
/// Each simulated server has its own baseline CPU (idle to busy), memory and disk level, and
/// samples wander around it with a daily swing and noise. Same seed → same rows → same model,
/// bit for bit (`Tools/make-default-model` writes it; a test checks the committed file).
public enum DefaultModel {
    public static let features = ["cpu", "memory", "disk"]
    public static let seed: UInt64 = 20_260_101
    public static let rows = 10_000

    /// The generated healthy-fleet rows: cpu %, memory %, disk %.
    public static func trainingRows(seed: UInt64 = seed, rows: Int = rows) -> [[Double]] {
        var rng = SplitMix64(seed: seed)
        let servers = 200
        let profiles = (0..<servers).map { _ in
            (cpu: 5 + 55 * rng.nextUnit(), memory: 25 + 50 * rng.nextUnit(), disk: 15 + 70 * rng.nextUnit())
        }
        var out: [[Double]] = []
        out.reserveCapacity(rows)
        for i in 0..<rows {
            let p = profiles[Int(rng.next() % UInt64(servers))]
            let hour = Double(i % 1440) / 60
            let daily = sin((hour - 9) / 24 * 2 * .pi)  // busiest mid-afternoon
            let cpu = p.cpu * (1 + 0.35 * daily) + gaussian(&rng) * 4
            let memory = p.memory + 3 * daily + gaussian(&rng) * 2
            let disk = p.disk + gaussian(&rng) * 0.5
            out.append([clamp(cpu), clamp(memory), clamp(disk)])
        }
        return out
    }

    /// The default model, fit on `trainingRows()` with fixed options and no timestamp.
    public static func make() -> IsolationForest {
        var options = FitOptions()
        options.seed = seed
        options.source = "GridMon default model: seeded healthy-fleet simulation (DefaultModel.swift), seed \(seed)"
        options.contamination = 0.01
        let rows = trainingRows()
        return IsolationForest.fit(FeatureMatrix(columns: features.count, rows: rows), features: features,
                                   options: options, createdUnix: 0)
    }

    /// A standard normal draw (Box–Muller).
    static func gaussian(_ rng: inout SplitMix64) -> Double {
        let u = max(rng.nextUnit(), 1e-300)
        let v = rng.nextUnit()
        return (-2 * log(u)).squareRoot() * cos(2 * .pi * v)
    }

    static func clamp(_ value: Double) -> Double { min(100, max(0, value)) }
}

#if canImport(Glibc)
import Glibc
#endif
