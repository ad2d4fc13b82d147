#if canImport(Glibc)
import Glibc
#endif

/// An Isolation Forest (Liu, Ting and Zhou, ICDM 2008) laid out for fast scoring.
///
/// All trees live in one flat node array. A node holds its split (feature, threshold) and
/// both child indices; a leaf points to itself twice, so walking a tree is a fixed number of
/// branch-free steps (its depth) and several samples can walk it side by side.
///
/// Score: s(x) = 2^(−E[h(x)] / c(ψ)), in 0...1, higher = more anomalous; `h` is the depth of
/// the leaf x reaches plus c(n) for the n training points in that leaf — exactly
/// scikit-learn's `-score_samples(x)`. Pure and immutable: share freely between threads.
public struct IsolationForest: Sendable {
    /// One node. Internal: go to `left` when `x[feature] <= threshold`, else `right`.
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

    public let features: [String]
    public let nodes: [Node]
    /// Path length credited at each leaf: its depth + c(training points in it); 0 elsewhere.
    public let leafValues: [Double]
    public let trees: [Tree]
    /// ψ, the subsample size each tree was grown from.
    public let subsampleSize: Int
    /// Scores at or above this are anomalous.
    public var threshold: Double
    public var metadata: ModelMetadata
    let layout: ScoringLayout

    /// c(ψ): the expected path length the scores are normalised by.
    public var normalizer: Double { averagePathLength(subsampleSize) }

    public init(features: [String], nodes: [Node], leafValues: [Double], trees: [Tree], subsampleSize: Int,
                threshold: Double, metadata: ModelMetadata) {
        self.features = features
        self.nodes = nodes
        self.leafValues = leafValues
        self.trees = trees
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
    var scale: Double { -1.0 / (Double(trees.count) * normalizer) }
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
