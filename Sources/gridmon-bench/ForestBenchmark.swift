import GridMonForest
import GridMonPosix

/// Isolation Forest speed: batch scoring throughput on a given model and CSV, and the time to
/// fit 100 trees on a given training CSV. Single thread; medians of thread CPU time.
struct ForestBenchmark {
    let rounds: Int
    let model: String
    let data: String
    let train: String

    func run() {
        guard let bytes = try? Files.read(model), let forest = try? ModelFile.decode(bytes) else {
            return print("gridmon-bench forest: cannot load \(model)")
        }
        guard let test = try? CSVTable(parsing: Files.readText(data), file: data),
              let matrix = try? test.matrix(columns: forest.features, file: data) else { return print("cannot read \(data)") }
        var out = [Double](repeating: 0, count: matrix.rows)
        let score = measure(rounds: rounds, millis: 300, opsPerCall: matrix.rows) { forest.score(matrix, into: &out) }
        print("swift score ns_per_sample=\(score.nsPerOp) samples_per_s=\(Int(1e9 / score.nsPerOp)) rows=\(matrix.rows) features=\(forest.features.count)")

        guard let trainTable = try? CSVTable(parsing: Files.readText(train), file: train),
              let trainMatrix = try? trainTable.matrix(columns: forest.features, file: train) else { return print("cannot read \(train)") }
        var options = FitOptions()
        options.trees = 100
        var seed: UInt64 = 0
        let fit = measure(rounds: rounds, millis: 300) {
            options.seed = seed
            seed += 1
            blackHole(IsolationForest.fit(trainMatrix, features: forest.features, options: options))
        }
        print("swift fit ms_per_fit=\(fit.nsPerOp / 1e6) trees=100 rows=\(trainMatrix.rows)")
    }
}
