import GridMonCore

/// Why a model file was refused. Every case names what is wrong, for a one-line error.
public enum ModelFileError: Error, Equatable, CustomStringConvertible {
    case notAModel
    case unsupportedVersion(UInt32)
    case truncated(String)
    case checksumMismatch(stored: UInt32, computed: UInt32)
    case badHeader(String)
    case badNode(tree: Int, node: Int, String)
    case trailingBytes(Int)
    case featureMismatch(model: [String], wanted: [String])

    public var description: String {
        switch self {
        case .notAModel: "not a GridMon model file (bad magic)"
        case .unsupportedVersion(let v): "model file version \(v) is not supported (this build reads version \(ModelFile.version))"
        case .truncated(let what): "model file is truncated (\(what))"
        case .checksumMismatch(let stored, let computed):
            "model file is corrupt: CRC-32C \(String(stored, radix: 16)) stored, \(String(computed, radix: 16)) computed"
        case .badHeader(let why): "model file header: \(why)"
        case .badNode(let tree, let node, let why): "model file tree \(tree) node \(node): \(why)"
        case .trailingBytes(let n): "model file has \(n) unexpected bytes after the last tree"
        case .featureMismatch(let model, let wanted):
            "model features \(model) do not match the expected \(wanted)"
        }
    }
}

/// GridMon's Isolation Forest model file, version 1. All integers little-endian:
///
///     magic      8 bytes   "GMFOREST"
///     version    u32       1
///     headerLen  u32       length of the text header
///     header     UTF-8, one `key value` per line: `features N`, then N lines `feature NAME`
///                (in column order), `threshold`, `subsample`, `trees`, `rows`, `seed`,
///                `created_unix`, `source`
///     trees      per tree: u32 nodeCount, then nodeCount nodes of 24 bytes:
///                f32 threshold, i32 feature, i32 left, i32 right, f64 leafValue.
///                Child indices count from the tree's first node and always point forward;
///                a leaf points at itself twice and carries its path length in leafValue.
///     crc        u32       CRC-32C of every byte before it
///
/// Loading checks everything (sizes before allocating, checksum, header fields, every node)
/// and throws `ModelFileError`; a bad file never crashes the loader. Pure: bytes in, bytes out.
public enum ModelFile {
    public static let magic = Array("GMFOREST".utf8)
    public static let version: UInt32 = 1
    static let nodeBytes = 24
    static let maxDepth = 64
    static let maxTrees = 100_000

    // MARK: - Writing

    public static func encode(_ forest: IsolationForest) -> [UInt8] {
        var out = magic
        put(&out, version)
        var header = "features \(forest.features.count)\n"
        for name in forest.features { header += "feature \(name)\n" }
        header += "threshold \(forest.threshold)\nsubsample \(forest.subsampleSize)\ntrees \(forest.trees.count)\n"
        header += "rows \(forest.metadata.trainingRows)\nseed \(forest.metadata.seed)\n"
        header += "created_unix \(forest.metadata.createdUnix)\nsource \(forest.metadata.source)\n"
        let headerBytes = Array(header.utf8)
        put(&out, UInt32(headerBytes.count))
        out += headerBytes
        let (nodes, leafValues) = forest.layout.canonical()
        for tree in forest.trees {
            put(&out, UInt32(tree.nodeCount))
            for i in tree.root..<tree.root + tree.nodeCount {
                let node = nodes[i]
                put(&out, node.threshold.bitPattern)
                put(&out, UInt32(bitPattern: node.feature))
                put(&out, UInt32(bitPattern: node.left - Int32(tree.root)))
                put(&out, UInt32(bitPattern: node.right - Int32(tree.root)))
                put(&out, leafValues[i].bitPattern)
            }
        }
        put(&out, CRC32C.checksum(out))
        return out
    }

    private static func put<T: FixedWidthInteger>(_ out: inout [UInt8], _ value: T) {
        withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) }
    }

    // MARK: - Reading

    /// Parses and validates a model file.
    /// - Parameter expectedFeatures: when given, the model's features must be exactly these.
    public static func decode(_ bytes: [UInt8], expectedFeatures: [String]? = nil) throws(ModelFileError) -> IsolationForest {
        guard bytes.count >= magic.count, Array(bytes[0..<magic.count]) == magic else { throw .notAModel }
        var reader = Reader(bytes: bytes, position: magic.count)
        let version = try reader.u32("version")
        guard version == Self.version else { throw .unsupportedVersion(version) }
        guard bytes.count >= magic.count + 12 else { throw .truncated("checksum") }
        let stored = UInt32(littleEndian: bytes[(bytes.count - 4)...].withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) })
        let computed = bytes[..<(bytes.count - 4)].withUnsafeBytes { CRC32C.checksum($0) }
        guard stored == computed else { throw .checksumMismatch(stored: stored, computed: computed) }
        reader.end = bytes.count - 4

        let headerLength = Int(try reader.u32("header length"))
        let header = try Header(parsing: try reader.take(headerLength, "header"))
        if let expectedFeatures, expectedFeatures != header.features {
            throw .featureMismatch(model: header.features, wanted: expectedFeatures)
        }

        var nodes: [IsolationForest.Node] = []
        var leaves: [Double] = []
        var trees: [IsolationForest.Tree] = []
        for t in 0..<header.trees {
            let count = Int(try reader.u32("tree \(t) node count"))
            guard count >= 1, count <= (reader.end - reader.position) / nodeBytes else {
                throw .truncated("tree \(t) announces \(count) nodes")
            }
            guard nodes.count + count <= IsolationForest.maxNodes else {
                throw .badNode(tree: t, node: count - 1, "the trees have more than \(IsolationForest.maxNodes) nodes in all")
            }
            let root = nodes.count
            var depth = [Int](repeating: -1, count: count)
            depth[0] = 0
            var deepest = 0
            for i in 0..<count {
                let threshold = Float(bitPattern: try reader.u32("node"))
                let feature = Int32(bitPattern: try reader.u32("node"))
                let left = Int(Int32(bitPattern: try reader.u32("node")))
                let right = Int(Int32(bitPattern: try reader.u32("node")))
                let leafValue = Double(bitPattern: try reader.u64("node"))
                guard depth[i] >= 0 else { throw .badNode(tree: t, node: i, "not reachable from the root") }
                if left == i && right == i {
                    guard leafValue.isFinite, leafValue >= 0 else { throw .badNode(tree: t, node: i, "leaf path length \(leafValue)") }
                    deepest = max(deepest, depth[i])
                    nodes.append(.init(threshold: .infinity, feature: 0, left: Int32(root + i), right: Int32(root + i)))
                    leaves.append(leafValue)
                } else {
                    guard (0..<header.features.count).contains(Int(feature)) else {
                        throw .badNode(tree: t, node: i, "feature \(feature) out of range")
                    }
                    guard left > i, right > i, left < count, right < count, left != right else {
                        throw .badNode(tree: t, node: i, "children \(left), \(right) must be distinct and after the node")
                    }
                    guard !threshold.isNaN else { throw .badNode(tree: t, node: i, "NaN threshold") }
                    guard depth[left] < 0, depth[right] < 0 else { throw .badNode(tree: t, node: i, "a child has two parents") }
                    guard depth[i] < maxDepth else { throw .badNode(tree: t, node: i, "deeper than \(maxDepth)") }
                    depth[left] = depth[i] + 1
                    depth[right] = depth[i] + 1
                    nodes.append(.init(threshold: threshold, feature: feature, left: Int32(root + left), right: Int32(root + right)))
                    leaves.append(0)
                }
            }
            trees.append(.init(root: root, nodeCount: count, depth: deepest))
        }
        guard reader.position == reader.end else { throw .trailingBytes(reader.end - reader.position) }
        return IsolationForest(
            features: header.features, nodes: nodes, leafValues: leaves, trees: trees, subsampleSize: header.subsample,
            threshold: header.threshold,
            metadata: ModelMetadata(trainingRows: header.rows, seed: header.seed, createdUnix: header.createdUnix, source: header.source))
    }

    private struct Reader {
        let bytes: [UInt8]
        var position: Int
        var end: Int

        init(bytes: [UInt8], position: Int) {
            self.bytes = bytes
            self.position = position
            self.end = bytes.count
        }

        mutating func take(_ count: Int, _ what: String) throws(ModelFileError) -> ArraySlice<UInt8> {
            guard count >= 0, count <= end - position else { throw .truncated(what) }
            defer { position += count }
            return bytes[position..<position + count]
        }

        mutating func u32(_ what: String) throws(ModelFileError) -> UInt32 {
            let slice = try take(4, what)
            return UInt32(slice[slice.startIndex]) | UInt32(slice[slice.startIndex + 1]) << 8
                | UInt32(slice[slice.startIndex + 2]) << 16 | UInt32(slice[slice.startIndex + 3]) << 24
        }

        mutating func u64(_ what: String) throws(ModelFileError) -> UInt64 {
            UInt64(try u32(what)) | UInt64(try u32(what)) << 32
        }
    }

    private struct Header {
        var features: [String] = []
        var threshold = 0.0
        var subsample = 0
        var trees = 0
        var rows = 0
        var seed: UInt64 = 0
        var createdUnix: Int64 = 0
        var source = ""

        init(parsing bytes: ArraySlice<UInt8>) throws(ModelFileError) {
            guard let text = String(validating: bytes, as: UTF8.self) else { throw .badHeader("not UTF-8") }
            var declared: Int?
            var seen = Set<String>()
            for line in text.split(separator: "\n") {
                let parts = line.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: false)
                let key = String(parts[0])
                let value = parts.count > 1 ? String(parts[1]) : ""
                if key != "feature" {
                    guard seen.insert(key).inserted else { throw .badHeader("\(key) given twice") }
                }
                switch key {
                case "features": declared = Int(value)
                case "feature":
                    guard !value.isEmpty, !features.contains(value) else { throw .badHeader("empty or repeated feature name '\(value)'") }
                    features.append(value)
                case "threshold": threshold = try number(key, value)
                case "subsample": subsample = try count(key, value)
                case "trees": trees = try count(key, value)
                case "rows": rows = try count(key, value)
                case "seed": guard let v = UInt64(value) else { throw .badHeader("seed '\(value)'") }; seed = v
                case "created_unix": guard let v = Int64(value) else { throw .badHeader("created_unix '\(value)'") }; createdUnix = v
                case "source": source = value
                default: break  // Unknown keys from newer writers are ignored.
                }
            }
            for key in ["features", "threshold", "subsample", "trees"] where !seen.contains(key) {
                throw .badHeader("\(key) missing")
            }
            guard let declared, declared == features.count, declared > 0 else {
                throw .badHeader("features says \(declared.map(String.init) ?? "?"), \(features.count) feature lines")
            }
            guard declared <= IsolationForest.maxFeatures else {
                throw .badHeader("\(declared) features, at most \(IsolationForest.maxFeatures)")
            }
            guard (0...1).contains(threshold) else { throw .badHeader("threshold \(threshold) outside 0...1") }
            guard subsample >= 1 else { throw .badHeader("subsample \(subsample)") }
            guard (1...ModelFile.maxTrees).contains(trees) else { throw .badHeader("trees \(trees)") }
        }

        /// A whole number written as one (or as a float, by older converters), at most 2^31 − 1:
        /// `Int(Double)` traps on what an Int cannot hold.
        private func count(_ key: String, _ value: String) throws(ModelFileError) -> Int {
            let number = try number(key, value)
            guard number <= Double(Int32.max) else { throw .badHeader("\(key) \(value) is too large") }
            return Int(number)
        }

        private func number(_ key: String, _ value: String) throws(ModelFileError) -> Double {
            guard let number = Double(value), number.isFinite, number >= 0 || key == "threshold" else {
                throw .badHeader("\(key) '\(value)' is not a number")
            }
            return number
        }
    }
}
