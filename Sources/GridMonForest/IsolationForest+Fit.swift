import GridMonCore
#if canImport(Glibc)
import Glibc
#endif

/// How to grow a forest.
public struct FitOptions: Sendable {
    /// t, the number of trees (the paper's and scikit-learn's default: 100).
    public var trees = 100
    /// ψ, rows drawn (without replacement) for each tree (default 256, as the paper).
    public var subsampleSize = 256
    public var seed: UInt64 = 0
    /// Fraction of training rows expected to be anomalous; the threshold becomes the score
    /// at that upper quantile of the training scores. nil: 0.5, scikit-learn's "auto".
    public var contamination: Double? = nil
    public var source = ""
    public init() {}
}

extension IsolationForest {
    /// Grows a forest on `data` (rows × `features.count` columns).
    ///
    /// Each tree: ψ rows drawn without replacement; at each node a feature drawn at random
    /// among those not constant there, and a split value uniform between their min and max;
    /// growth stops at depth ⌈log2 ψ⌉ or one row (Liu et al. 2008, Algorithms 1–2, as
    /// scikit-learn's ExtraTree splitter does it). Deterministic for a given seed.
    public static func fit(_ data: FeatureMatrix, features: [String], options: FitOptions = FitOptions(),
                           createdUnix: Int64 = 0) -> IsolationForest {
        precondition(data.columns == features.count && data.rows > 0, "need rows with one column per feature")
        precondition(options.trees > 0 && options.subsampleSize > 0)
        var rng = SplitMix64(seed: options.seed)
        let psi = min(options.subsampleSize, data.rows)
        let maxDepth = Int(ceil(log2(Double(max(psi, 2)))))
        var builder = TreeBuilder(data: data)
        var all = [Int](0..<data.rows)
        for _ in 0..<options.trees {
            // Partial Fisher–Yates: the first psi entries become a uniform sample.
            for i in 0..<psi {
                let j = i + Int(rng.next() % UInt64(data.rows - i))
                all.swapAt(i, j)
            }
            builder.grow(rows: Array(all[0..<psi]), maxDepth: maxDepth, rng: &rng)
        }
        var forest = IsolationForest(
            features: features, nodes: builder.nodes, leafValues: builder.leafValues, trees: builder.trees,
            subsampleSize: psi, threshold: 0.5,
            metadata: ModelMetadata(trainingRows: data.rows, seed: options.seed, createdUnix: createdUnix, source: options.source))
        if let contamination = options.contamination {
            forest.threshold = quantile(forest.scores(data), 1 - contamination)
        }
        return forest
    }
}

/// Grows trees into one flat node array.
struct TreeBuilder {
    let data: FeatureMatrix
    var nodes: [IsolationForest.Node] = []
    var leafValues: [Double] = []
    var trees: [IsolationForest.Tree] = []

    init(data: FeatureMatrix) { self.data = data }

    mutating func grow(rows: [Int], maxDepth: Int, rng: inout SplitMix64) {
        var rows = rows
        let root = nodes.count
        var deepest = 0
        // Work stack of (node index, rows range, depth); children are appended as a pair,
        // so every child comes after its parent (the model loader relies on that).
        var stack: [(node: Int, start: Int, end: Int, depth: Int)] = [(root, 0, rows.count, 0)]
        appendLeafPlaceholder()
        var order = [Int](0..<data.columns)
        let columns = data.columns
        let data = self.data  // (a second reference to the same storage, read while `self` grows)
        // Through raw buffers, without a bounds and uniqueness check per row visit: 100 trees on
        // ASD's 8,640 × 19 took 1.95 ms, now 1.70 (`gridmon-bench forest`, interleaved runs);
        // tree growing was 12 % of a young fleet's ingest CPU (`perf`, `Tools/bench-detect`,
        // 100 nodes). The same rows are visited in the same order: the trees are the same.
        data.values.withUnsafeBufferPointer { values in
            rows.withUnsafeMutableBufferPointer { rows in
                while let (node, start, end, depth) = stack.popLast() {
                    let count = end - start
                    deepest = max(deepest, depth)
                    guard depth < maxDepth, count > 1,
                          let (feature, threshold) = Self.chooseSplit(values, columns, rows, start, end, &order, &rng) else {
                        makeLeaf(node, value: Double(depth) + averagePathLength(count))
                        continue
                    }
                    // Partition: x <= threshold to the front.
                    var mid = start
                    for i in start..<end where values[rows[i] * columns + feature] <= threshold {
                        rows.swapAt(i, mid)
                        mid += 1
                    }
                    let left = nodes.count
                    appendLeafPlaceholder()
                    appendLeafPlaceholder()
                    nodes[node] = IsolationForest.Node(threshold: threshold, feature: Int32(feature), left: Int32(left), right: Int32(left + 1))
                    leafValues[node] = 0
                    stack.append((left + 1, mid, end, depth + 1))
                    stack.append((left, start, mid, depth + 1))
                }
            }
        }
        trees.append(IsolationForest.Tree(root: root, nodeCount: nodes.count - root, depth: deepest))
    }

    /// A random feature among those not constant on `rows[start..<end]`, and a split uniform
    /// in [min, max). Features are tried in random order without replacement; nil when all are
    /// constant.
    private static func chooseSplit(_ values: UnsafeBufferPointer<Float>, _ columns: Int, _ rows: UnsafeMutableBufferPointer<Int>,
                                    _ start: Int, _ end: Int, _ order: inout [Int], _ rng: inout SplitMix64) -> (Int, Float)? {
        var remaining = order.count
        while remaining > 0 {
            let pick = Int(rng.next() % UInt64(remaining))
            remaining -= 1
            order.swapAt(pick, remaining)
            let feature = order[remaining]
            var low = Float.infinity
            var high = -Float.infinity
            for i in start..<end {
                let value = values[rows[i] * columns + feature]
                low = min(low, value)
                high = max(high, value)
            }
            guard low < high, low.isFinite, high.isFinite else { continue }
            var threshold = Float(Double(low) + rng.nextUnit() * (Double(high) - Double(low)))
            if threshold >= high { threshold = low }  // rounding reached max: keep a non-empty right side
            return (feature, threshold)
        }
        return nil
    }

    private mutating func appendLeafPlaceholder() {
        let index = Int32(nodes.count)
        nodes.append(IsolationForest.Node(threshold: .infinity, feature: 0, left: index, right: index))
        leafValues.append(0)
    }

    private mutating func makeLeaf(_ node: Int, value: Double) {
        nodes[node] = IsolationForest.Node(threshold: .infinity, feature: 0, left: Int32(node), right: Int32(node))
        leafValues[node] = value
    }
}
