import Foundation
import GridMonCore
import Testing
@testable import GridMonForest

/// The scoring layout is a forest's only copy of its trees (issue #17): it must score any
/// canonical forest exactly as a walk of that forest's own nodes does, whatever their order,
/// and give back an equivalent canonical view.
@Suite struct ScoringLayoutTests {
    /// Random trees in scikit-learn's order (pre-order: a node, its whole left subtree, then
    /// its right one, so a right child is rarely next to its sibling), leaf values drawn from
    /// a small set so several leaves share one.
    static func preorderForest(trees: Int, seed: UInt64) -> (nodes: [IsolationForest.Node], leaves: [Double], trees: [IsolationForest.Tree]) {
        var rng = SplitMix64(seed: seed)
        var nodes: [IsolationForest.Node] = [], leaves: [Double] = [], out: [IsolationForest.Tree] = []
        let values = (0..<5).map { _ in 1 + rng.nextUnit() * 8 }
        func grow(_ depth: Int) -> (index: Int, depth: Int) {
            let index = nodes.count
            nodes.append(IsolationForest.Node(threshold: .infinity, feature: 0, left: Int32(index), right: Int32(index)))
            leaves.append(values[Int(rng.next() % 5)])
            guard depth < 7, depth < 2 || rng.nextUnit() < 0.8 else { return (index, depth) }
            let (left, leftDepth) = grow(depth + 1)
            let (right, rightDepth) = grow(depth + 1)
            nodes[index] = IsolationForest.Node(threshold: Float(rng.nextUnit()), feature: Int32(rng.next() % 3),
                                                left: Int32(left), right: Int32(right))
            leaves[index] = 0
            return (index, max(leftDepth, rightDepth))
        }
        for _ in 0..<trees {
            let root = nodes.count
            let (_, depth) = grow(0)
            out.append(IsolationForest.Tree(root: root, nodeCount: nodes.count - root, depth: depth))
        }
        return (nodes, leaves, out)
    }

    @Test(arguments: [1, 16, 40])
    func aForestInAnyNodeOrderScoresAsAWalkOfItsOwnNodes(trees: Int) throws {
        let (nodes, leaves, shape) = Self.preorderForest(trees: trees, seed: UInt64(trees))
        #expect(nodes.indices.contains { nodes[$0].left != nodes[$0].right && nodes[$0].right != nodes[$0].left + 1 })
        let forest = IsolationForest(features: ["a", "b", "c"], nodes: nodes, leafValues: leaves, trees: shape,
                                     subsampleSize: 256, threshold: 0.5, metadata: ModelMetadata())
        var rng = SplitMix64(seed: 99)
        var rows = FeatureMatrix(columns: 3)
        for i in 0..<41 { rows.append(i == 40 ? [.nan, 0.5, .nan] : [rng.nextUnit(), rng.nextUnit(), rng.nextUnit()]) }
        let scores = forest.scores(rows)
        for i in 0..<rows.rows {
            var sum = 0.0
            for tree in shape {
                var at = tree.root
                while nodes[at].left != nodes[at].right {
                    let node = nodes[at]
                    at = Int(rows[i, Int(node.feature)] > node.threshold ? node.right : node.left)  // NaN goes left
                }
                sum += leaves[at]
            }
            let expected = exp2(sum * (-1.0 / (Double(trees) * forest.normalizer)))
            #expect(scores[i].bitPattern == expected.bitPattern, "row \(i)")
        }
        // The canonical view is the same forest: same shape per tree, and laid out again it
        // is itself (what a model file written from it reads back as).
        #expect(forest.nodeCount == nodes.count && forest.treeCount == trees)
        // Every split has two children: nodes = 2 × leaves − trees.
        #expect(forest.leafCount == nodes.indices.filter { nodes[$0].left == nodes[$0].right }.count)
        #expect(forest.nodeCount == 2 * forest.leafCount - trees)
        #expect(forest.trees.map(\.nodeCount) == shape.map(\.nodeCount) && forest.trees.map(\.depth) == shape.map(\.depth))
        let again = IsolationForest(features: forest.features, nodes: forest.nodes, leafValues: forest.leafValues, trees: forest.trees,
                                    subsampleSize: 256, threshold: 0.5, metadata: ModelMetadata())
        #expect(again.nodes == forest.nodes && again.leafValues == forest.leafValues)
        let loaded = try ModelFile.decode(ModelFile.encode(forest))
        #expect(loaded.scores(rows).map(\.bitPattern) == scores.map(\.bitPattern))
        // Five distinct leaf values, stored once each.
        #expect(forest.layout.leafValues.count == Set(leaves.filter { $0 > 0 }).count)
    }

    /// Memory is the point: one 8-byte word pair per node and a few hundred leaf values, not
    /// 40 bytes a node (canonical nodes, their leaf values and the layout, before issue #17).
    @Test func aFittedForestHoldsEightBytesANodeAndItsDistinctLeafValues() {
        let (data, _) = clusterWithOutliers()
        var options = FitOptions()
        options.trees = 16
        let forest = IsolationForest.fit(data, features: ["x", "y"], options: options)
        let layout = forest.layout
        #expect(MemoryLayout<ScoringLayout.PackedNode>.stride == 8)
        #expect(layout.leafValues.count * 4 < forest.nodeCount, "\(layout.leafValues.count) distinct leaf values for \(forest.nodeCount) nodes")
        #expect(forest.byteCount <= forest.nodeCount * 8 + layout.leafValues.count * 16 + 1024)
    }
}
