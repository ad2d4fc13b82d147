#if canImport(Glibc)
import Glibc
#endif

/// An Isolation Forest (Liu, Ting and Zhou, ICDM 2008) laid out for fast scoring.
///
/// The trees live in one `ScoringLayout`: 8 bytes a node, each tree breadth-first, a node's
/// children side by side, so walking a tree is a fixed number of branch-free steps (its
/// depth) and several samples can walk it side by side. `nodes`, `leafValues` and `trees`
/// are the canonical view of the same trees, in the layout's order, rebuilt on each call.
///
/// Score: s(x) = 2^(−E[h(x)] / c(ψ)), in 0...1, higher = more anomalous; `h` is the depth of
/// the leaf x reaches plus c(n) for the n training points in that leaf — exactly
/// scikit-learn's `-score_samples(x)`. Pure and immutable: share freely between threads.
public struct IsolationForest: Sendable {
    /// One node. Internal: go to `right` when `x[feature] > threshold`, else `left` (NaN goes
    /// left; scikit-learn refuses NaN input).
    /// Leaf: `left == right ==` its own index, `feature` 0, `threshold` +∞.
    public struct Node: Sendable, Equatable {
        public var threshold: Float
        public var feature: Int32
        public var left: Int32
        public var right: Int32
    }

    public struct Tree: Sendable, Equatable {
        /// Index of the root in `nodes`.
        public var root: Int
        public var nodeCount: Int
        /// Longest root-to-leaf path, in edges: the number of steps a walk takes.
        public var depth: Int
    }

    /// Most nodes (all trees together) and features a forest can have: what one node's
    /// packed word holds (`ScoringLayout`). `ModelFile.decode` and `gridmon-train` refuse more.
    public static let maxNodes = ScoringLayout.maxNodes - 1
    public static let maxFeatures = ScoringLayout.maxFeatures

    public let features: [String]
    /// ψ, the subsample size each tree was grown from.
    public let subsampleSize: Int
    /// Scores at or above this are anomalous.
    public var threshold: Double
    public var metadata: ModelMetadata
    let layout: ScoringLayout

    /// Every tree's nodes (canonical view, O(nodes) per call: bind it once).
    public var nodes: [Node] { layout.canonical().nodes }
    /// Path length credited at each leaf: its depth + c(training points in it); 0 elsewhere
    /// (canonical view, O(nodes) per call).
    public var leafValues: [Double] { layout.canonical().leafValues }
    /// Where each tree's nodes start in `nodes`, how many, and how deep.
    public var trees: [Tree] { layout.trees }
    public var treeCount: Int { layout.roots.count }
    public var nodeCount: Int { layout.nodes.count }
    public var leafCount: Int { layout.leafCount }
    /// Bytes the trees take in memory.
    public var byteCount: Int { layout.byteCount }

    /// c(ψ): the expected path length the scores are normalised by.
    public var normalizer: Double { averagePathLength(subsampleSize) }

    /// A forest of `trees` over `nodes` (a leaf points at itself twice; children come after
    /// their parent). Traps past `maxNodes` nodes or `maxFeatures` features.
    public init(features: [String], nodes: [Node], leafValues: [Double], trees: [Tree], subsampleSize: Int,
                threshold: Double, metadata: ModelMetadata) {
        precondition(features.count <= Self.maxFeatures, "\(features.count) features, at most \(Self.maxFeatures)")
        self.features = features
        self.subsampleSize = subsampleSize
        self.threshold = threshold
        self.metadata = metadata
        self.layout = ScoringLayout(nodes: nodes, leafValues: leafValues, trees: trees)
    }

    /// The anomaly score of one row (values in `features` order).
    public func score(_ row: [Double]) -> Double {
        precondition(row.count == features.count, "row has \(row.count) values, the model \(features.count)")
        var out = [0.0]
        score(FeatureMatrix(columns: features.count, rows: [row]), into: &out)
        return out[0]
    }

    /// The anomaly score of every row of `matrix`.
    public func scores(_ matrix: FeatureMatrix) -> [Double] {
        var out = [Double](repeating: 0, count: matrix.rows)
        score(matrix, into: &out)
        return out
    }

    /// Scores the rows of `matrix` into `out` (one per row); see `ScoringLayout.score`.
    public func score(_ matrix: FeatureMatrix, into out: inout [Double]) {
        precondition(matrix.columns == features.count, "matrix has \(matrix.columns) columns, the model \(features.count)")
        precondition(out.count >= matrix.rows)
        guard matrix.rows > 0 else { return }
        let layout = self.layout, scale = self.scale, rows = matrix.rows, columns = matrix.columns
        matrix.values.withUnsafeBufferPointer { x in
            out.withUnsafeMutableBufferPointer { out in
                layout.score(x.baseAddress!, rows: rows, columns: columns, scale: scale, into: out.baseAddress!)
            }
        }
    }

    /// What a walk's summed leaf values are multiplied by before `exp2`: −1 / (trees × c(ψ)).
    var scale: Double { -1.0 / (Double(treeCount) * normalizer) }
}

/// What a model file says about where a model came from.
public struct ModelMetadata: Sendable, Equatable {
    public var trainingRows: Int = 0
    public var seed: UInt64 = 0
    /// Unix seconds when the model was fit (0 = unknown).
    public var createdUnix: Int64 = 0
    /// Free text: the training file, the tool that converted it, ...
    public var source: String = ""
    public init(trainingRows: Int = 0, seed: UInt64 = 0, createdUnix: Int64 = 0, source: String = "") {
        self.trainingRows = trainingRows
        self.seed = seed
        self.createdUnix = createdUnix
        self.source = source
    }
}
