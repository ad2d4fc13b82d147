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

    /// Scores the rows of `matrix` into `out` (one per row).
    ///
    /// Rows go through each tree eight at a time, as eight independent walks in eight
    /// registers: the processor overlaps their loads instead of waiting on one walk at a time
    /// (a single walk is a chain of dependent loads). A last partial block is padded.
    public func score(_ matrix: FeatureMatrix, into out: inout [Double]) {
        precondition(matrix.columns == features.count, "matrix has \(matrix.columns) columns, the model \(features.count)")
        precondition(out.count >= matrix.rows)
        let rows = matrix.rows
        let whole = rows / 8 * 8
        if whole > 0 {
            matrix.values.withUnsafeBufferPointer { x in
                out.withUnsafeMutableBufferPointer { out in scoreBlocks(x.baseAddress!, blocks: whole / 8, columns: matrix.columns, out.baseAddress!) }
            }
        }
        if whole < rows {
            let columns = matrix.columns
            matrix.values.withUnsafeBufferPointer { x in
                if rows - whole <= 3 {
                    // A few rows: one walk each costs less than a padded block of eight.
                    for i in whole..<rows { out[i] = scoreOne(x.baseAddress! + i * columns) }
                } else {
                    // Pad the tail to a whole block with copies of the last row (on the stack).
                    withUnsafeTemporaryAllocation(of: Float.self, capacity: 8 * columns) { tail in
                        for lane in 0..<8 {
                            let row = min(whole + lane, rows - 1)
                            for f in 0..<columns { tail[lane * columns + f] = x[row * columns + f] }
                        }
                        withUnsafeTemporaryAllocation(of: Double.self, capacity: 8) { scores in
                            scoreBlocks(UnsafePointer(tail.baseAddress!), blocks: 1, columns: columns, scores.baseAddress!)
                            for i in whole..<rows { out[i] = scores[i - whole] }
                        }
                    }
                }
            }
        }
    }

    /// One row through every tree, one walk at a time (for small batches).
    private func scoreOne(_ x: UnsafePointer<Float>) -> Double {
        layout.nodes.withUnsafeBufferPointer { nodeBuffer in
            layout.leaves.withUnsafeBufferPointer { leaves in
                let nodes = nodeBuffer.baseAddress!
                var sum = 0.0
                for t in 0..<layout.roots.count {
                    var cursor = layout.roots[t]
                    for _ in 0..<layout.depths[t] {
                        let node = nodes[cursor]
                        let feature = Int(node.packed >> ScoringLayout.indexBits)
                        cursor = Int(node.packed & (1 << ScoringLayout.indexBits - 1)) + (x[feature] > node.threshold ? 1 : 0)
                    }
                    sum += leaves[cursor]
                }
                return exp2(sum * (-1.0 / (Double(trees.count) * normalizer)))
            }
        }
    }

    /// Rows are scored in chunks of up to 256 (their features and sums stay in L1), tree by
    /// tree (a tree's ~500 nodes stay in L1 while every row of the chunk walks it). Within a
    /// chunk the features are transposed per block of 8 rows (feature-major), so one base
    /// register serves all eight walks and the lane is a constant offset.
    private func scoreBlocks(_ x: UnsafePointer<Float>, blocks: Int, columns: Int, _ out: UnsafeMutablePointer<Double>) {
        let scale = -1.0 / (Double(trees.count) * normalizer)
        let chunkBlocks = 32
        layout.nodes.withUnsafeBufferPointer { nodeBuffer in
            layout.leaves.withUnsafeBufferPointer { leafBuffer in
                let nodes = nodeBuffer.baseAddress!
                let leaves = leafBuffer.baseAddress!
                withUnsafeTemporaryAllocation(of: Double.self, capacity: chunkBlocks * 8) { sums in
                    withUnsafeTemporaryAllocation(of: Float.self, capacity: chunkBlocks * 8 * columns) { soa in
                        var firstBlock = 0
                        while firstBlock < blocks {
                            let chunk = min(chunkBlocks, blocks - firstBlock)
                            for i in 0..<chunk * 8 { sums[i] = 0 }
                            // soa[block][feature][lane]
                            for block in 0..<chunk {
                                for lane in 0..<8 {
                                    let row = x + ((firstBlock + block) * 8 + lane) * columns
                                    for f in 0..<columns { soa[(block * columns + f) * 8 + lane] = row[f] }
                                }
                            }
                            for t in 0..<layout.roots.count {
                                let root = layout.roots[t]
                                let depth = layout.depths[t]
                                for block in 0..<chunk {
                                    let xb = soa.baseAddress! + block * columns * 8
                                    var c0 = root, c1 = root, c2 = root, c3 = root, c4 = root, c5 = root, c6 = root, c7 = root
                                    for _ in 0..<depth {
                                        c0 = ScoringLayout.step(nodes, c0, xb, 0)
                                        c1 = ScoringLayout.step(nodes, c1, xb, 1)
                                        c2 = ScoringLayout.step(nodes, c2, xb, 2)
                                        c3 = ScoringLayout.step(nodes, c3, xb, 3)
                                        c4 = ScoringLayout.step(nodes, c4, xb, 4)
                                        c5 = ScoringLayout.step(nodes, c5, xb, 5)
                                        c6 = ScoringLayout.step(nodes, c6, xb, 6)
                                        c7 = ScoringLayout.step(nodes, c7, xb, 7)
                                    }
                                    let s = sums.baseAddress! + block * 8
                                    s[0] += leaves[c0]; s[1] += leaves[c1]; s[2] += leaves[c2]; s[3] += leaves[c3]
                                    s[4] += leaves[c4]; s[5] += leaves[c5]; s[6] += leaves[c6]; s[7] += leaves[c7]
                                }
                            }
                            let o = out + firstBlock * 8
                            for i in 0..<chunk * 8 { o[i] = exp2(sums[i] * scale) }
                            firstBlock += chunk
                        }
                    }
                }
            }
        }
    }
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
