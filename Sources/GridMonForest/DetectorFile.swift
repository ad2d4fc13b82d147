import GridMonCore

/// A model file of either kind, as `gridmon-train` and the server load it: a plain Isolation
/// Forest (`ModelFile`, magic "GMFOREST") or a temporal per-metric detector (magic "GMTEMPOR").
public enum Detector: Sendable {
    case forest(IsolationForest)
    case temporal(TemporalDetector)

    /// The columns a data file must have, in the order the model reads them.
    public var inputColumns: [String] {
        switch self {
        case .forest(let forest): forest.features
        case .temporal(let detector): detector.metrics
        }
    }

    /// Scores of time-ordered rows (columns as `inputColumns`): s(x) in 0...1 for a forest,
    /// the raw top-k score for a temporal detector (rank-equivalent to its 0...1 score).
    public func scores(_ rows: [[Double]]) -> [Double] {
        switch self {
        case .forest(let forest): forest.scores(FeatureMatrix(columns: forest.features.count, rows: rows))
        case .temporal(let detector): detector.rawScores(rows)
        }
    }

    /// Scores in 0...1 as the server stores them: s(x) for a forest, `score01` of the raw
    /// score for a temporal detector.
    public func scores01(_ rows: [[Double]]) -> [Double] {
        switch self {
        case .forest: scores(rows)
        case .temporal(let detector): detector.rawScores(rows).map(TemporalDetector.score01)
        }
    }

    public var threshold: Double {
        switch self {
        case .forest(let forest): forest.threshold
        case .temporal(let detector): detector.threshold
        }
    }

    public static func decode(_ bytes: [UInt8]) throws(ModelFileError) -> Detector {
        if bytes.starts(with: TemporalFile.magic) { return .temporal(try TemporalFile.decode(bytes)) }
        return .forest(try ModelFile.decode(bytes))
    }

    public func encode() -> [UInt8] {
        switch self {
        case .forest(let forest): ModelFile.encode(forest)
        case .temporal(let detector): TemporalFile.encode(detector)
        }
    }
}

/// The temporal detector's file, version 1 to 4 (little-endian):
///
///     magic "GMTEMPOR", u32 version, u32 headerLen, header text:
///       `window W`, [version 2: `slow_horizon H`], `top_k K`, `threshold T`, `metrics N`, then N lines
///       `metric MEDIAN SPREAD NAME` (column order)
///     N × (u32 length, one complete `ModelFile` for that metric's forest)
///     u32 CRC-32C of every byte before it
///
/// Version 1 is feature set 1 (five window features per metric); version 2 adds the slow
/// features (`TemporalFeatures`); version 3 adds `range_scale S` and one `range M LO HI` line
/// per metric (the range term), with or without `slow_horizon`; version 4 is version 3 with
/// forests that do not see the level features (`TemporalDetector.levelFeatures` false: range
/// lines present iff `range_scale` is). Each embedded forest is validated as a model file of its
/// own, with the feature names its version implies. Pure.
public enum TemporalFile {
    public static let magic = Array("GMTEMPOR".utf8)

    public static func encode(_ detector: TemporalDetector) -> [UInt8] {
        var out = magic
        let version: UInt32 = !detector.levelFeatures ? 4 : detector.rangeScale != nil ? 3 : detector.slowHorizon == nil ? 1 : 2
        put(&out, version)
        var header = "window \(detector.window)\n"
        if let horizon = detector.slowHorizon { header += "slow_horizon \(horizon)\n" }
        if let scale = detector.rangeScale {
            header += "range_scale \(scale)\n"
            for m in detector.metrics.indices {
                header += "range \(m) \(detector.ranges[m].lowerBound) \(detector.ranges[m].upperBound)\n"
            }
        }
        header += "top_k \(detector.topK)\nthreshold \(detector.threshold)\nmetrics \(detector.metrics.count)\n"
        for m in detector.metrics.indices {
            header += "metric \(detector.medians[m]) \(detector.spreads[m]) \(detector.metrics[m])\n"
        }
        let headerBytes = Array(header.utf8)
        put(&out, UInt32(headerBytes.count))
        out += headerBytes
        for forest in detector.forests {
            let blob = ModelFile.encode(forest)
            put(&out, UInt32(blob.count))
            out += blob
        }
        put(&out, CRC32C.checksum(out))
        return out
    }

    private static func put(_ out: inout [UInt8], _ value: UInt32) {
        withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) }
    }

    public static func decode(_ bytes: [UInt8]) throws(ModelFileError) -> TemporalDetector {
        guard bytes.starts(with: magic) else { throw .notAModel }
        guard bytes.count >= magic.count + 12 else { throw .truncated("header") }
        var position = magic.count
        func u32() throws(ModelFileError) -> UInt32 {
            guard position + 4 <= bytes.count - 4 else { throw .truncated("length field") }
            defer { position += 4 }
            return UInt32(bytes[position]) | UInt32(bytes[position + 1]) << 8 | UInt32(bytes[position + 2]) << 16 | UInt32(bytes[position + 3]) << 24
        }
        let version = try u32()
        guard (1...4).contains(version) else { throw .unsupportedVersion(version) }
        let stored = bytes[(bytes.count - 4)...].withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self)) }
        let computed = bytes[..<(bytes.count - 4)].withUnsafeBytes { CRC32C.checksum($0) }
        guard stored == computed else { throw .checksumMismatch(stored: stored, computed: computed) }
        let headerLength = Int(try u32())
        guard headerLength <= bytes.count - 4 - position else { throw .truncated("header") }
        guard let text = String(validating: bytes[position..<position + headerLength], as: UTF8.self) else { throw .badHeader("not UTF-8") }
        position += headerLength

        var window = 0, topK = 0, declared = -1, horizon = 0
        var threshold = Double.nan
        var rangeScale: Double?
        var ranges: [Int: ClosedRange<Double>] = [:]
        var metrics: [String] = [], medians: [Double] = [], spreads: [Double] = []
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: false).map(String.init)
            switch parts[0] {
            case "window": window = Int(parts.count > 1 ? parts[1] : "") ?? 0
            case "range_scale":
                guard let v = Double(parts.count > 1 ? parts[1] : ""), v.isFinite, v > 0 else { throw .badHeader("bad line '\(line)'") }
                rangeScale = v
            case "range":
                guard parts.count == 4, let m = Int(parts[1]), (0..<100_000).contains(m), let lo = Double(parts[2]),
                      let hi = Double(parts[3]), lo.isFinite, hi.isFinite, lo <= hi, ranges[m] == nil
                else { throw .badHeader("bad line '\(line)'") }
                ranges[m] = lo...hi
            case "slow_horizon": horizon = Int(parts.count > 1 ? parts[1] : "") ?? 0
            case "top_k": topK = Int(parts.count > 1 ? parts[1] : "") ?? 0
            case "threshold": threshold = Double(parts.count > 1 ? parts[1] : "") ?? .nan
            case "metrics": declared = Int(parts.count > 1 ? parts[1] : "") ?? -1
            case "metric":
                guard parts.count == 4, let median = Double(parts[1]), let spread = Double(parts[2]), median.isFinite,
                      spread.isFinite, spread > 0, !parts[3].isEmpty
                else { throw .badHeader("bad line '\(line)'") }
                medians.append(median)
                spreads.append(spread)
                metrics.append(parts[3])
            default: break
            }
        }
        guard (1...10_000).contains(window) else { throw .badHeader("window \(window)") }
        guard version == 1 || horizon == 0 || (1...1_000_000).contains(horizon) else { throw .badHeader("slow_horizon \(horizon)") }
        guard version != 2 || horizon > 0 else { throw .badHeader("version 2 needs slow_horizon") }
        let slowHorizon = horizon > 0 && version >= 2 ? horizon : nil
        guard version >= 3 || rangeScale == nil else { throw .badHeader("range_scale belongs to versions 3 and 4") }
        guard version != 3 || rangeScale != nil else { throw .badHeader("version 3 needs range_scale") }
        let levelFeatures = version < 4
        guard declared == metrics.count, declared > 0 else { throw .badHeader("metrics says \(declared), \(metrics.count) metric lines") }
        guard (1...metrics.count).contains(topK) else { throw .badHeader("top_k \(topK)") }
        guard threshold.isFinite else { throw .badHeader("threshold missing") }
        var forests: [IsolationForest] = []
        for m in metrics.indices {
            let length = Int(try u32())
            guard length <= bytes.count - 4 - position else { throw .truncated("forest of \(metrics[m])") }
            let expected = TemporalDetector.forestFeatures(of: metrics[m], slow: slowHorizon != nil, levelFeatures: levelFeatures)
            forests.append(try ModelFile.decode(Array(bytes[position..<position + length]), expectedFeatures: expected))
            position += length
        }
        guard position == bytes.count - 4 else { throw .trailingBytes(bytes.count - 4 - position) }
        var rangeList: [ClosedRange<Double>] = []
        if rangeScale != nil {
            rangeList = metrics.indices.compactMap { ranges[$0] }
            guard ranges.count == metrics.count, rangeList.count == metrics.count else {
                throw .badHeader("\(ranges.count) range lines for \(metrics.count) metrics")
            }
        }
        return TemporalDetector(metrics: metrics, window: window, slowHorizon: slowHorizon, topK: topK, forests: forests,
                                medians: medians, spreads: spreads, threshold: threshold, ranges: rangeList, rangeScale: rangeScale,
                                levelFeatures: levelFeatures)
    }
}
