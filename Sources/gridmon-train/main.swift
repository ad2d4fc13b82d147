// gridmon-train: fit, score, evaluate and inspect GridMon's Isolation Forest models.
//
// Exit codes: 0 done; 1 bad input data or model file (the message names the file and line);
// 64 bad flags (EX_USAGE).
import ArgumentParser
import GridMonConfig
import GridMonCore
import GridMonForest
import GridMonPosix
#if canImport(Glibc)
import Glibc
#endif


/// Prints `message` to stderr and exits 1: the input, not the program, is at fault.
func fail(_ message: String) -> Never {
    var text = "gridmon-train: \(message)\n"
    text.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
    exit(1)
}

func loadCSV(_ path: String) -> CSVTable {
    do { return try CSVTable(parsing: try Files.readText(path), file: path) } catch let error as CSVTable.ParseError {
        fail(error.description)
    } catch { fail("\(error)") }
}

func loadModel(_ path: String) -> Detector {
    let bytes: [UInt8]
    do { bytes = try Files.read(path) } catch { fail("\(error)") }
    do { return try Detector.decode(bytes) } catch { fail("\(path): \(error)") }
}

/// The model's input columns of every row of `path`, in time order.
func rows(_ table: CSVTable, _ columns: [String], _ path: String) -> [[Double]] {
    var indices: [Int] = []
    for name in columns {
        guard let index = table.columns.firstIndex(of: name) else {
            fail("\(path):1: no column '\(name)' (columns: \(table.columns.joined(separator: ", ")))")
        }
        indices.append(index)
    }
    return table.rows.map { row in indices.map { row[$0] } }
}

func matrix(_ table: CSVTable, _ features: [String], _ path: String) -> FeatureMatrix {
    FeatureMatrix(columns: features.count, rows: rows(table, features, path))
}

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gridmon-train",
        abstract: "Fit, score, evaluate and inspect Isolation Forest models (CSV in, model file out).",
        discussion: "Exit codes: 0 done, 1 bad data or model file (named with file and line), 64 bad flags.",
        version: BuildInfo.versionLine("gridmon-train"),
        subcommands: [Fit.self, Score.self, Evaluate.self, Inspect.self, DefaultModelCommand.self])
}

struct Fit: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Fit a model on a CSV file with a header row.")

    @Option(help: "Training CSV (header row, numbers). [GRIDMON_TRAIN_DATA]")
    var data: String = environment("GRIDMON_TRAIN_DATA") ?? ""
    @Option(help: "Model file to write. [GRIDMON_MODEL]")
    var out: String = environment("GRIDMON_MODEL") ?? "model.gmf"
    @Option(help: "Comma-separated feature columns (default: all). [GRIDMON_FEATURES]")
    var features: String = environment("GRIDMON_FEATURES") ?? ""
    @Option(help: "forest: one Isolation Forest over the features (scikit-learn's model). temporal: a forest per metric over its temporal features (value, delta, rolling mean and std, deviation), top-k vote; rows must be in time order. [GRIDMON_METHOD]")
    var method: String = environment("GRIDMON_METHOD") ?? "forest"
    @Option(help: "temporal: rolling window, in samples. [GRIDMON_WINDOW]")
    var window: Int = Settings.shared.int("window", 10, variable: "GRIDMON_WINDOW")
    @Option(help: "temporal: slow horizon in samples for the trend and drift features (0 = window features only, file version 1). [GRIDMON_SLOW_HORIZON]")
    var slowHorizon: Int = Settings.shared.int("slow-horizon", 0, variable: "GRIDMON_SLOW_HORIZON")
    @Option(help: "temporal: a metric that leaves its training range by this many range widths flags on its own (0 = forests only). [GRIDMON_RANGE_SCALE]")
    var rangeScale: Double = Settings.shared.double("range-scale", (TemporalDetector.Options().rangeScale ?? 0), variable: "GRIDMON_RANGE_SCALE")
    @Flag(help: "temporal: each metric's forest also sees its value and rolling mean (file versions 1-3; off: level is judged by the range term alone, so a slow healthy drift is not trouble). [GRIDMON_LEVEL_FEATURES=1]")
    var levelFeatures = environment("GRIDMON_LEVEL_FEATURES") == "1"
    @Option(help: "temporal: how many of the most anomalous metrics are averaged. [GRIDMON_TOP_K]")
    var topK: Int = Settings.shared.int("top-k", TemporalDetector.Options().topK, variable: "GRIDMON_TOP_K")
    @Option(help: "temporal: raw score at or above which a row is flagged (1 = the training 99th percentile on average over the top-k metrics; the server's --node-threshold). [GRIDMON_THRESHOLD]")
    var threshold: Double = Settings.shared.double("threshold", TemporalDetector.Options().threshold, variable: "GRIDMON_THRESHOLD")
    @Option(help: "Number of trees t (per metric for temporal; default 100 for forest, 16 for temporal). [GRIDMON_TREES]")
    var trees: Int = Settings.shared.int("trees", 0, variable: "GRIDMON_TREES")
    @Option(help: "Subsample size ψ per tree. [GRIDMON_SUBSAMPLE]")
    var subsample: Int = Settings.shared.int("subsample", 256, variable: "GRIDMON_SUBSAMPLE")
    @Option(help: "Random seed (same seed + data = same model, bit for bit). [GRIDMON_SEED]")
    var seed: UInt64 = Settings.shared.int("seed", 0, variable: "GRIDMON_SEED")
    @Option(help: "Expected anomaly fraction in (0, 0.5); sets the threshold at that quantile of training scores (0 = fixed threshold 0.5, scikit-learn's 'auto'). [GRIDMON_CONTAMINATION]")
    var contamination: Double = Settings.shared.double("contamination", 0, variable: "GRIDMON_CONTAMINATION")
    @Option(help: "Creation time recorded in the model, Unix seconds (-1 = now; fix it for reproducible files). [GRIDMON_CREATED_UNIX]")
    var createdUnix: Int64 = Settings.shared.int("created-unix", -1, variable: "GRIDMON_CREATED_UNIX")

    func validate() throws {
        guard !data.isEmpty else { throw ValidationError("--data is required") }
        guard ["forest", "temporal"].contains(method) else { throw ValidationError("--method is forest or temporal") }
        guard (0...100_000).contains(trees), subsample >= 2 else { throw ValidationError("--trees 1...100000, --subsample >= 2") }
        guard (1...10_000).contains(window), topK >= 1, (0...1_000_000).contains(slowHorizon) else { throw ValidationError("--window 1...10000, --top-k >= 1, --slow-horizon 0...1000000") }
        guard contamination == 0 || (contamination > 0 && contamination < 0.5) else { throw ValidationError("--contamination must be 0 or in (0, 0.5)") }
        guard threshold.isFinite, threshold > 0 else { throw ValidationError("--threshold must be a positive number") }
    }

    func run() throws {
        let table = loadCSV(data)
        let names = features.isEmpty ? table.columns : features.split(separator: ",").map(String.init)
        let created = createdUnix >= 0 ? createdUnix : Int64(time(nil))
        // A forest's nodes pack a feature index into 12 bits and a node index into 20
        // (`ScoringLayout`); a tree grown on ψ rows has at most 2ψ − 1 nodes.
        let treeCount = trees > 0 ? trees : (method == "temporal" ? TemporalDetector.Options().trees : 100)
        let psi = min(subsample, max(table.rows.count, 1))
        if method == "forest", names.count > IsolationForest.maxFeatures {
            fail("\(data): \(names.count) feature columns, a forest takes at most \(IsolationForest.maxFeatures)")
        }
        if treeCount * (2 * psi - 1) > IsolationForest.maxNodes {
            fail("--trees \(treeCount) × up to \(2 * psi - 1) nodes each (subsample \(psi)) is more than a forest's \(IsolationForest.maxNodes) nodes: use fewer trees or a smaller --subsample")
        }
        if method == "temporal" {
            var options = TemporalDetector.Options()
            options.window = window
            options.topK = topK
            options.slowHorizon = slowHorizon > 0 ? slowHorizon : nil
            options.rangeScale = rangeScale > 0 ? rangeScale : nil
            options.trees = trees > 0 ? trees : options.trees
            options.subsampleSize = subsample
            options.seed = seed
            options.threshold = threshold
            options.levelFeatures = levelFeatures
            let detector = TemporalDetector.fit(rows(table, names, data), metrics: names, options: options, createdUnix: created, source: data)
            do { try Files.writeAtomically(out, TemporalFile.encode(detector)) } catch { fail("\(error)") }
            print("wrote \(out): temporal detector, \(names.count) metrics × \(options.trees) trees, window \(window), top \(detector.topK)")
            return
        }
        var options = FitOptions()
        options.trees = trees > 0 ? trees : 100
        options.subsampleSize = subsample
        options.seed = seed
        options.contamination = contamination > 0 ? contamination : nil
        options.source = data
        let forest = IsolationForest.fit(matrix(table, names, data), features: names, options: options, createdUnix: created)
        do { try Files.writeAtomically(out, ModelFile.encode(forest)) } catch { fail("\(error)") }
        print("wrote \(out): \(forest.treeCount) trees, \(forest.nodeCount) nodes, \(names.count) features, threshold \(forest.threshold)")
    }
}

struct Score: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Score every row of a CSV file: one anomaly score (0...1) per line.")
    @Option(help: "Model file. [GRIDMON_MODEL]") var model: String = environment("GRIDMON_MODEL") ?? "model.gmf"
    @Option(help: "CSV with the model's feature columns. [GRIDMON_DATA]") var data: String = environment("GRIDMON_DATA") ?? ""
    func validate() throws { guard !data.isEmpty else { throw ValidationError("--data is required") } }
    func run() throws {
        let detector = loadModel(model)
        // The scores the server stores: s(x) for a forest, score01(raw) for a temporal detector.
        let scores = detector.scores01(rows(loadCSV(data), detector.inputColumns, data))
        var out = "score\n"
        out.reserveCapacity(scores.count * 20)
        for score in scores { out += "\(score)\n" }
        print(out, terminator: "")
    }
}

struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "ROC-AUC, PR-AUC (average precision) and best point-wise F1 against labels.",
        discussion: """
            Scores come from --model over --data, or from --scores: a CSV with a `score` column \
            (what `gridmon-train score` prints, or a server's stored anomaly_score) and \
            optionally a `flagged` column (0/1, the server's verdicts). Both add precision and \
            recall at the detector's own threshold (with --model, the model file's).
            """)
    @Option(help: "Model file. [GRIDMON_MODEL]") var model: String = environment("GRIDMON_MODEL") ?? "model.gmf"
    @Option(help: "Test CSV. [GRIDMON_DATA]") var data: String = environment("GRIDMON_DATA") ?? ""
    @Option(help: "Scores CSV (instead of --model and --data). [GRIDMON_SCORES]") var scores: String = environment("GRIDMON_SCORES") ?? ""
    @Option(help: "Labels CSV: header, then one 0/1 per test row. [GRIDMON_LABELS]") var labels: String = environment("GRIDMON_LABELS") ?? ""
    @Flag(help: "Print JSON.") var json = false
    func validate() throws {
        guard !labels.isEmpty, data.isEmpty != scores.isEmpty else { throw ValidationError("--labels and one of --data or --scores are required") }
    }
    func run() throws {
        var values: [Double]
        var verdicts: [Bool]?
        if scores.isEmpty {
            let detector = loadModel(model)
            values = detector.scores(rows(loadCSV(data), detector.inputColumns, data))
            // The model's own verdicts (`scores` are in the threshold's units for both kinds).
            verdicts = values.map { $0 >= detector.threshold }
        } else {
            let table = loadCSV(scores)
            guard let s = table.columns.firstIndex(of: "score") else { fail("\(scores): no `score` column") }
            values = table.rows.map { $0[s] }
            if let f = table.columns.firstIndex(of: "flagged") { verdicts = table.rows.map { $0[f] != 0 } }
        }
        let labelTable = loadCSV(labels)
        guard labelTable.columns.count == 1 else { fail("\(labels): expected one label column, found \(labelTable.columns.count)") }
        guard labelTable.rows.count == values.count else { fail("\(labels): \(labelTable.rows.count) labels for \(values.count) scores") }
        var flags: [Bool] = []
        for (i, row) in labelTable.rows.enumerated() {
            guard row[0] == 0 || row[0] == 1 else { fail("\(labels):\(i + 2): label \(row[0]) is not 0 or 1") }
            flags.append(row[0] == 1)
        }
        let q = DetectionQuality(scores: values, labels: flags)
        var atFlag = ""
        if let verdicts {
            let tp = zip(verdicts, flags).filter { $0 && $1 }.count
            let flagged = verdicts.filter { $0 }.count
            let precision = flagged == 0 ? 0 : Double(tp) / Double(flagged)
            let recall = Double(tp) / Double(max(1, flags.filter { $0 }.count))
            atFlag = json ? ",\"precision_at_flag\":\(precision),\"recall_at_flag\":\(recall),\"flagged\":\(flagged)"
                : "  at the detector's threshold: precision \(precision) recall \(recall) (\(flagged) flagged)"
        }
        if json {
            print("{\"roc_auc\":\(q.rocAUC),\"pr_auc\":\(q.prAUC),\"best_f1\":\(q.bestF1),\"best_threshold\":\(q.bestThreshold),\"rows\":\(values.count)\(atFlag)}")
        } else {
            print("rows \(values.count)  ROC-AUC \(q.rocAUC)  PR-AUC \(q.prAUC)  best F1 \(q.bestF1) (at score >= \(q.bestThreshold))\(atFlag)")
        }
    }
}

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show what a model file holds.")
    @Argument(help: "Model file.") var model: String
    func run() throws {
        let forest: IsolationForest
        switch loadModel(model) {
        case .forest(let f): forest = f
        case .temporal(let t):
            print("""
                kind          temporal per-metric detector
                metrics       \(t.metrics.joined(separator: ", "))
                window        \(t.window) samples, top-\(t.topK) vote, threshold \(t.threshold)
                forests       \(t.forests.count) × \(t.forests.first?.trees.count ?? 0) trees, \(t.forests.reduce(0) { $0 + $1.nodeCount }) nodes
                features      \((t.forests.first?.features ?? []).map { $0.split(separator: ".").last.map(String.init) ?? $0 }.joined(separator: ", ")) per metric\(t.rangeScale.map { ", range term at \($0) × the training range" } ?? "")
                source        \(t.forests.first?.metadata.source ?? "")
                """)
            return
        }
        let depths = forest.trees.map(\.depth)
        print("""
            kind          Isolation Forest
            features      \(forest.features.joined(separator: ", "))
            trees         \(forest.trees.count)
            nodes         \(forest.nodeCount) (\(forest.leafCount) leaves)
            subsample     \(forest.subsampleSize)  (c(ψ) = \(forest.normalizer))
            depth         max \(depths.max() ?? 0), mean \(Double(depths.reduce(0, +)) / Double(max(1, depths.count)))
            threshold     \(forest.threshold)
            trained on    \(forest.metadata.trainingRows) rows, seed \(forest.metadata.seed), created \(forest.metadata.createdUnix)
            source        \(forest.metadata.source)
            """)
    }
}

struct DefaultModelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "default-model",
        abstract: "Write GridMon's default global model (and, with --data, its generated training rows), bit for bit reproducible.")
    @Option(help: "Model file to write.") var out: String = "default-model.gmf"
    @Option(help: "Also write the generated training rows as CSV here.") var data: String = ""
    func run() throws {
        let forest = DefaultModel.make()
        do { try Files.writeAtomically(out, ModelFile.encode(forest)) } catch { fail("\(error)") }
        if !data.isEmpty {
            var csv = DefaultModel.features.joined(separator: ",") + "\n"
            for row in DefaultModel.trainingRows() { csv += row.map { "\($0)" }.joined(separator: ",") + "\n" }
            do { try Files.writeAtomically(data, Array(csv.utf8)) } catch { fail("\(error)") }
        }
        print("wrote \(out): \(forest.trees.count) trees over \(DefaultModel.features.joined(separator: ", ")), threshold \(forest.threshold)")
    }
}

// Variables are checked as strictly as flags: a bad GRIDMON_… value is an error naming it, not
// silently the default (issue #15). These tools take no settings file.
Settings.shared.load(arguments: [], environment: processEnvironment().filter { $0.key != "GRIDMON_CONFIG" }) { _ in "" }
do {
    var command = try Train.parseAsRoot()
    if let problem = Settings.shared.problems.first { throw ValidationError(problem) }
    try command.run()
} catch {
    Train.exit(withError: error)
}
