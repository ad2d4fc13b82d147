import GridMonCore
import GridMonForest
import GridMonWire

/// Settings of live detection, the same for every node (no per-node tuning).
public struct LiveDetectorOptions: Sendable {
    /// Samples a node sends before its own detector is first fit (issue #11: "a few minutes
    /// of samples, not an hour"; 300 is five minutes at the agent's 1 s interval).
    public var warmup = 300
    /// Longest run of samples between refits. Otherwise a refit comes when half the history
    /// reservoir's rows are new since the last fit (at 300, ~2350, then at intervals growing
    /// about 1.65× each as a new row replaces an old one with probability reservoir/eligible),
    /// and a degenerate detector is refit after `warmup` new rows. (Refitting each time the
    /// history doubled, 300, 600, 1200…, lowered live ASD to 0.790 / 0.331 / 0.399 from
    /// 0.790 / 0.352 / 0.415: more models fit on less history.) (A fixed
    /// hourly refit of an old node refit a history 4 % new: it bought nothing and cost 35 % of
    /// the server's CPU in `Tools/bench-detect`.)
    public var refitEvery = 86_400
    /// Feature rows kept per node for fitting (a uniform sample of its history outside
    /// incidents). 4096: through the live path (`Tools/eval-asd --live`, mean ROC / PR / F1)
    /// 1024 rows gave 0.784 / 0.305 / 0.373, 2048 0.783 / 0.307 / 0.388, 4096 0.790 / 0.352 /
    /// 0.415, 8192 0.787 / 0.345 / 0.410; a node's detection then holds ~1.5 MB instead of
    /// ~0.9 MB (8 gauges, 16 trees each).
    public var reservoir = 4096
    /// Most bytes of history a node keeps: a node with many gauges keeps fewer rows
    /// (`historyRows`), so a peer's 256 extra gauges cannot make its history 20 MiB.
    public var maxHistoryBytes = 4 << 20
    /// Most metrics modelled per node (the fixed eight plus extra gauges).
    public var maxMetrics = 64
    /// Samples of an incident that stays open this long join the history after all: a level
    /// that holds for half an hour is the node's new normal (a deploy, a bigger dataset), and a
    /// baseline that never admits it would keep the incident open forever.
    public var acceptIncidentAfter = 300
    /// A detector fit on fewer history rows than this is provisional and flags only at
    /// `provisionalFactor` × the threshold. The warm-up detector (300 rows) flags much of
    /// what a node normally does that its first five minutes did not show, and its incidents
    /// keep those samples out of the history, which left later detectors narrower than the
    /// node. Through the live path (`Tools/eval-asd --live`) 0.786 / 0.348 / 0.410 → 0.794 /
    /// 0.362 / 0.428, precision at the verdicts 0.219 → 0.310, with every fleet incident kind
    /// still found. (Letting a provisional detector's incidents into the history instead
    /// scored as well on ASD, but early trouble became baseline: 10-minute fleet
    /// disk-filling recall 0.87.)
    public var trustedRows = 2048
    public var provisionalFactor = 2.0
    /// The offline detector's defaults (`TemporalDetector.Options`: 16 trees per metric).
    public var detector = TemporalDetector.Options()
    public var incidents = IncidentRules()
    public init() {}
}

/// How a batch of one node's samples was judged.
public struct Judgement: Sendable {
    /// Per sample, 0...1 (the stored `anomaly_score`).
    public var scores: [Double] = []
    public var flagged: [Bool] = []
    public var state: DetectorState = .learning
    public init() {}
}

/// A node's history to fit its detector on, copied out for the trainer thread.
public struct TrainingJob: Sendable {
    public let key: NodeKey
    public let metrics: [String]
    /// `rows` rows of `metrics.count × columns.count` floats: per metric, the columns of its
    /// `TemporalFeatures` row the fit reads (`TemporalDetector.fitColumns`), in order.
    public let features: [Float]
    public let rows: Int
    /// The node's sample count when the job was taken (the refit schedule continues from it).
    public let atSample: Int
}

/// One node's live detection: its feature stream, the history its detector learns from, the
/// detector once fit, and its incident state (issue #11).
///
/// Life: `learning` until `warmup` samples, judged by the shared prior model if one is
/// configured and not at all otherwise; then `active` on its own temporal detector, refit in
/// the background as history grows (`takeJob` / `install`); a detector fit on fewer than
/// `trustedRows` rows is provisional and flags only at a higher threshold. Once a detector is active, samples
/// inside an incident, and the flagged ones that opened it, stay out of the history, so trouble
/// never becomes the baseline, while
/// a lone flagged sample outside one joins it: with every flagged sample kept out, a node's
/// baseline froze at its first five minutes and a daily cycle's later hours were flagged for
/// good (the fleet simulation flagged 24 % of healthy samples that way). A detector fit on constant history is degenerate: the state is `off` and nothing
/// is flagged until a refit sees movement.
///
/// Memory: the feature window, `reservoir` feature rows and the detector's forests; see
/// `byteCount`. Pure value type; the owner serialises access (one lock per node).
public struct NodeDetector: Sendable {
    public let key: NodeKey
    public let options: LiveDetectorOptions
    private var layout: MetricLayout?
    private var features: TemporalFeatures?
    public private(set) var model: TemporalDetector?
    /// History rows: per metric, the feature columns a fit reads (`kept`), not all of them.
    private var reservoir: [Float] = []
    /// The last `incidents.window` feature rows not yet in the history (see `observe`).
    private var pending: [Float] = []
    /// Ring positions in `pending` (in rows): the oldest row, and how many are held.
    private var pendingFirst = 0
    private var pendingRows = 0
    private var reservoirRows = 0
    /// Rows of history this node keeps: `reservoir`, fewer for a wide node (`maxHistoryBytes`).
    private var historyRows: Int
    /// The columns of each metric's feature row that the history keeps, bit c for column c
    /// (`TemporalDetector.fitColumns`): a mask, not an array, so judging a sample touches no
    /// further heap object of the node's.
    private let kept: UInt8
    private var keptCount: Int { kept.nonzeroBitCount }
    private var eligible = 0
    private var rng: SplitMix64
    public private(set) var samples = 0
    /// No fit before this sample (the warm-up, or a retry after a refused job).
    private var nextFitAt: Int
    private var jobOut = false
    /// History rows of the job in flight, and of the installed detector's fit.
    private var jobRows = 0
    private var modelRows = 0
    /// History rows added or replaced since the last fit was taken, and the sample count then.
    private var changedSinceFit = 0
    private var lastFitAt = 0
    private var tracker: IncidentTracker
    public private(set) var open: Incident?
    private var baseline: [Double] = []
    private var driverSums: [Double] = []
    private var extremes: [Double] = []
    private var extremeNs: [Int64] = []
    private var recentNs: [Int64]
    private var prior: PriorStream?
    // Scratch, reused batch to batch.
    private var row: [Double] = []
    private var featureRow: [Float] = []
    private var batchFeatures: [Float] = []
    private var batchValues: [Double] = []
    private var scratch = TemporalDetector.Scratch()

    public init(key: NodeKey, options: LiveDetectorOptions) {
        self.key = key
        self.options = options
        rng = SplitMix64(seed: FNV1a.hash(key.description))
        nextFitAt = options.warmup
        historyRows = options.reservoir
        kept = TemporalDetector.fitColumns(options.detector).reduce(0) { $0 | 1 << $1 }
        tracker = IncidentTracker(rules: options.incidents)
        recentNs = [Int64](repeating: 0, count: options.incidents.window)
    }

    public var state: DetectorState {
        guard let model else { return .learning }
        return model.isDegenerate ? .off : .active
    }

    /// The metrics this node's detector reads (empty before its first sample).
    public var metrics: [String] { layout?.names ?? [] }

    /// Judges one batch of the node's samples (in seq order) and returns the incident
    /// transitions they caused. `nextID` numbers a new incident.
    public mutating func observe(_ samples: [Sample], prior configured: ConfiguredModel?, nextID: () -> UInt64,
                                 into out: inout Judgement) -> [IncidentEvent] {
        out.scores.removeAll(keepingCapacity: true)
        out.flagged.removeAll(keepingCapacity: true)
        guard !samples.isEmpty else { return [] }
        if layout == nil {
            let made = MetricLayout(first: samples[0], maxMetrics: options.maxMetrics)
            layout = made
            historyRows = min(options.reservoir, max(16, options.maxHistoryBytes / (made.names.count * keptCount * 4)))
            features = TemporalFeatures(metrics: made.names.count, window: options.detector.window,
                                        slowHorizon: options.detector.slowHorizon)
        }
        // Every sample goes through the node's own feature stream, judged or not, so the
        // stream is warm the moment a detector is installed.
        batchFeatures.removeAll(keepingCapacity: true)
        batchValues.removeAll(keepingCapacity: true)
        for sample in samples {
            layout!.read(sample, into: &row)
            features!.push(row, into: &featureRow)
            batchFeatures += featureRow
            batchValues += row
        }
        out.state = state
        var explain: (names: [String], values: [Double], normalised: [Double])?
        if let model {
            let raws = model.scores(featureRows: batchFeatures, count: samples.count, scratch: &scratch)
            let threshold = model.threshold * (modelRows < options.trustedRows ? options.provisionalFactor : 1)
            for raw in raws {
                out.scores.append(TemporalDetector.score01(raw))
                out.flagged.append(!model.isDegenerate && raw >= threshold)
            }
            explain = (model.metrics, batchValues, scratch.normalised)
        } else if let configured {
            // A reload (SIGHUP) brings a new model: its own stream, from this sample on.
            if prior?.model !== configured { prior = PriorStream(configured) }
            explain = prior!.judge(samples, into: &out)
        } else {
            out.scores = [Double](repeating: 0, count: samples.count)
            out.flagged = [Bool](repeating: false, count: samples.count)
        }
        let judged = model != nil || configured != nil
        var events: [IncidentEvent] = []
        let perMetric = features!.perMetric, metrics = features!.metrics
        let fullWidth = perMetric * metrics, width = keptCount * metrics
        for i in samples.indices {
            let ns = samples[i].timestampNs
            recentNs[self.samples % recentNs.count] = ns
            self.samples += 1
            if judged, let explain {
                let n = explain.names.count
                let values = explain.values[(i * n)..<((i + 1) * n)]
                let normalised = explain.normalised.isEmpty ? nil : explain.normalised[(i * n)..<((i + 1) * n)]
                if let event = track(flagged: out.flagged[i], score: out.scores[i], ns: ns, names: explain.names,
                                     values: values, normalised: normalised, nextID: nextID) {
                    events.append(event)
                }
            }
            guard options.warmup > 0 else { continue }
            let row = i * fullWidth
            if model == nil {
                // Learning: everything.
                remember { [batchFeatures, kept] in Self.copyKept(batchFeatures, row, kept, perMetric, metrics, into: &$0, at: $1) }
            } else if open != nil && self.samples - openedAtSample <= options.acceptIncidentAfter {
                // Inside an incident: its samples stay out, and so do the flagged ones that
                // led to it (they were pending when it opened).
                pendingRows = 0
            } else {
                // Outside one (or in one old enough to be the new normal): a row joins the
                // history once it is older than the incident window, i.e. once it can no longer
                // be part of the k of n that open one. (Joining at once let an incident's first
                // flagged samples in: one network storm's onset in a node's history widened
                // its range so far that the next storm went unseen.)
                let window = options.incidents.window
                if pending.isEmpty { pending = [Float](repeating: 0, count: window * width) }
                var slot = (pendingFirst + pendingRows) % window
                if pendingRows == window {
                    let oldest = pendingFirst * width
                    remember { [pending] in $0.replaceSubrange($1..<($1 + width), with: pending[oldest..<(oldest + width)]) }
                    slot = pendingFirst
                    pendingFirst = (pendingFirst + 1) % window
                } else {
                    pendingRows += 1
                }
                Self.copyKept(batchFeatures, row, kept, perMetric, metrics, into: &pending, at: slot * width)
            }
        }
        return events
    }

    /// The node's history for a (re)fit, when one is due and none is in flight (`fitIsDue`
    /// and `makeJob` in one step, for a caller that fits at once).
    public mutating func takeJob() -> TrainingJob? {
        fitIsDue() ? makeJob() : nil
    }

    /// Whether a (re)fit is due and none is queued or in flight; if so the node now counts
    /// one as queued until `install`. The history is copied later, by `makeJob`, when the
    /// trainer gets to this node: a queue of keys, not of histories (each up to 4 MiB).
    public mutating func fitIsDue() -> Bool {
        guard !jobOut, options.warmup > 0, samples >= nextFitAt, reservoirRows >= 2, layout != nil else { return false }
        let stuck = model?.isDegenerate == true && changedSinceFit >= max(1, options.warmup)
        let due = model == nil || stuck || changedSinceFit * 2 >= historyRows || samples - lastFitAt >= options.refitEvery
        if due { jobOut = true }
        return due
    }

    /// The history to fit on now, for a fit `fitIsDue` queued (nil, and nothing queued any
    /// more, when the node cannot be fit: its layout was reset meanwhile).
    public mutating func makeJob() -> TrainingJob? {
        guard jobOut, reservoirRows >= 2, let layout else {
            jobOut = false
            return nil
        }
        jobRows = reservoirRows
        changedSinceFit = 0
        lastFitAt = samples
        return TrainingJob(key: key, metrics: layout.names, features: reservoir, rows: reservoirRows, atSample: samples)
    }

    /// A fit finished (nil: it could not be run, e.g. the trainer had stopped — retried later).
    public mutating func install(_ detector: TemporalDetector?) {
        jobOut = false
        guard let detector else {
            // Retried a little later, as due as it was.
            nextFitAt = samples + max(1, options.warmup / 10)
            changedSinceFit = max(changedSinceFit, (historyRows + 1) / 2)
            return
        }
        if detector.metrics != metrics { return }  // the node restarted its layout meanwhile
        model = detector
        modelRows = jobRows
    }

    /// Bytes this node's detection holds.
    public var byteCount: Int {
        (reservoir.capacity + pending.capacity) * 4 + (features?.byteCount ?? 0) + (model?.byteCount ?? 0)
            + (baseline.count + driverSums.count + extremes.count + extremeNs.count) * 8 + 512
    }

    // MARK: - History

    /// Adds a row to the history (Algorithm R once it is full): `write(&reservoir, at)` writes
    /// the row's `kept` columns at `at` when it is kept.
    private mutating func remember(_ write: (inout [Float], Int) -> Void) {
        let width = keptCount * (features?.metrics ?? 0)
        eligible += 1
        if reservoirRows < historyRows {
            if reservoir.capacity < reservoir.count + width {
                // Grow by doubling, but never past the history's size (the byte budget is exact).
                reservoir.reserveCapacity(min(historyRows * width, max(reservoir.count * 2, 64 * width)))
            }
            let at = reservoir.count
            reservoir.append(contentsOf: repeatElement(0, count: width))
            write(&reservoir, at)
            reservoirRows += 1
            changedSinceFit += 1
        } else {
            // Vitter's Algorithm R: every eligible row is kept with probability reservoir/eligible.
            // (A history biased to the last hour changed nothing in the fleet simulation.)
            let slot = Int(rng.next() % UInt64(eligible))
            if slot < historyRows {
                write(&reservoir, slot * width)
                changedSinceFit += 1
            }
        }
    }

    /// Writes the `kept` columns (a mask) of each of `metrics` metrics of the feature row at
    /// `row` in `rows` into `dst` from `at`.
    private static func copyKept(_ rows: [Float], _ row: Int, _ kept: UInt8, _ perMetric: Int, _ metrics: Int,
                                 into dst: inout [Float], at: Int) {
        rows.withUnsafeBufferPointer { src in
            dst.withUnsafeMutableBufferPointer { dst in
                var out = at
                for m in 0..<metrics {
                    let base = row + m * perMetric
                    for c in 0..<perMetric where kept & 1 << c != 0 {
                        dst[out] = src[base + c]
                        out += 1
                    }
                }
            }
        }
    }

    // MARK: - Incidents

    private mutating func track(flagged: Bool, score: Double, ns: Int64, names: [String], values: ArraySlice<Double>,
                                normalised: ArraySlice<Double>?, nextID: () -> UInt64) -> IncidentEvent? {
        let n = names.count
        let v = values.startIndex
        if baseline.count != n {
            baseline = Array(values)
            driverSums = [Double](repeating: 0, count: n)
            extremes = Array(values)
            extremeNs = [Int64](repeating: 0, count: n)
        }
        let earlierFlags = tracker.recentFlags
        switch tracker.next(flagged: flagged) {
        case .opened(let back):
            let startNs = recentNs[(samples - 1 - back + recentNs.count * 2) % recentNs.count]
            for m in 0..<n {
                driverSums[m] = 0
                extremes[m] = baseline[m]
                extremeNs[m] = startNs
            }
            openedAtSample = samples
            open = Incident(id: nextID(), tenant: key.tenant, node: key.node, startNs: startNs, endNs: nil, openedNs: ns,
                            peakScore: score, flagged: earlierFlags, drivers: [])
            account(score: score, ns: ns, values: values, normalised: normalised)
            open!.drivers = drivers(names)
            return .opened(open!)
        case .closed:
            guard var closed = open else { return nil }
            closed.endNs = lastFlaggedNs ?? ns
            closed.drivers = drivers(names)
            open = nil
            return .closed(closed)
        case .none:
            if open != nil {
                if flagged { account(score: score, ns: ns, values: values, normalised: normalised) }
            } else if !flagged {
                // Quiet, no incident: the level the next incident is measured from.
                for m in 0..<n where values[v + m].isFinite {
                    baseline[m] = baseline[m].isFinite ? baseline[m] + 0.05 * (values[v + m] - baseline[m]) : values[v + m]
                }
            }
            return nil
        }
    }

    /// Adds a flagged sample to the open incident.
    private mutating func account(score: Double, ns: Int64, values: ArraySlice<Double>, normalised: ArraySlice<Double>?) {
        open!.flagged += 1
        open!.peakScore = max(open!.peakScore, score)
        lastFlaggedNs = ns
        let v = values.startIndex
        for m in 0..<driverSums.count {
            if let normalised { driverSums[m] += max(0, normalised[normalised.startIndex + m]) }
            let x = values[v + m]
            if x.isFinite && abs(x - baseline[m]) > abs(extremes[m] - baseline[m]) {
                extremes[m] = x
                extremeNs[m] = ns
            }
        }
    }

    private var lastFlaggedNs: Int64?
    private var openedAtSample = 0

    private func drivers(_ names: [String]) -> [IncidentDriver] {
        let ranked = names.indices.filter { driverSums[$0] > 0 }.sorted { driverSums[$0] > driverSums[$1] }
        return ranked.prefix(3).map { m in
            IncidentDriver(metric: names[m], direction: extremes[m] >= baseline[m] ? "up" : "down", from: baseline[m],
                           to: extremes[m], afterNs: extremeNs[m] - (open?.startNs ?? extremeNs[m]))
        }
    }
}

/// A model file loaded with `--model`, as one object: a reload makes a new one, which is how a
/// node's `PriorStream` knows to start over.
public final class ConfiguredModel: Sendable {
    public let detector: Detector
    public init(_ detector: Detector) { self.detector = detector }
}

/// A configured model judging a node that is still learning: its own column layout and, for a
/// temporal detector, its own feature stream (the model's window, from the node's first sample).
struct PriorStream: Sendable {
    let model: ConfiguredModel
    var detector: Detector { model.detector }
    var layout: MetricLayout
    var features: TemporalFeatures?
    var row: [Double] = []
    var featureRow: [Float] = []
    var batch: [Float] = []
    var values: [Double] = []
    var scratch = TemporalDetector.Scratch()

    init(_ model: ConfiguredModel) {
        self.model = model
        layout = MetricLayout(names: model.detector.inputColumns)
        if case .temporal(let t) = model.detector { features = t.makeFeatures() }
    }

    /// Scores `samples`; returns what explains a temporal verdict (metric names, values, normalised scores).
    mutating func judge(_ samples: [Sample], into out: inout Judgement) -> (names: [String], values: [Double], normalised: [Double])? {
        batch.removeAll(keepingCapacity: true)
        values.removeAll(keepingCapacity: true)
        switch detector {
        case .temporal(let t):
            for sample in samples {
                layout.read(sample, into: &row)
                features!.push(row, into: &featureRow)
                batch += featureRow
                values += row
            }
            for raw in t.scores(featureRows: batch, count: samples.count, scratch: &scratch) {
                out.scores.append(TemporalDetector.score01(raw))
                out.flagged.append(!t.isDegenerate && raw >= t.threshold)
            }
            return (t.metrics, values, scratch.normalised)
        case .forest(let forest):
            for sample in samples {
                layout.read(sample, into: &row)
                for v in row { batch.append(Float(v)) }
                values += row
            }
            var scores = [Double](repeating: 0, count: samples.count)
            forest.score(FeatureMatrix(columns: forest.features.count, values: batch), into: &scores)
            for s in scores {
                out.scores.append(s)
                out.flagged.append(s >= forest.threshold)
            }
            return (forest.features, values, [])
        }
    }
}
