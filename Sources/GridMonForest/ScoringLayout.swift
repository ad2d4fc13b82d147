/// The forest re-laid out for scoring speed: 8-byte nodes, siblings side by side.
///
/// Each tree is renumbered breadth-first so a node's two children are adjacent: the walk
/// step is `child = left + (x > threshold)`, with the feature index and `left` packed into
/// one 32-bit word. A leaf has threshold +∞ and points at itself, so it stays put (also for
/// NaN input, since NaN > +∞ is false). Built once from the canonical nodes; immutable.
struct ScoringLayout: Sendable {
    /// `threshold` then `packed = feature << 20 | left` (absolute node index).
    struct PackedNode: Sendable {
        var threshold: Float
        var packed: UInt32
    }

    static let indexBits: UInt32 = 20
    static let maxNodes = 1 << 20
    static let maxFeatures = 1 << 12

    var nodes: [PackedNode] = []
    var leaves: [Double] = []
    var roots: [Int] = []
    var depths: [Int] = []

    init(nodes canonical: [IsolationForest.Node], leafValues: [Double], trees: [IsolationForest.Tree]) {
        precondition(canonical.count < Self.maxNodes, "forest too large for the scoring layout (\(canonical.count) nodes)")
        nodes.reserveCapacity(canonical.count)
        leaves.reserveCapacity(canonical.count)
        for tree in trees {
            let root = nodes.count
            roots.append(root)
            depths.append(tree.depth)
            // Breadth-first: queue[i] is the canonical index of new node root + i.
            var queue = [tree.root]
            var head = 0
            while head < queue.count {
                let old = canonical[queue[head]]
                let isLeaf = old.left == old.right
                if isLeaf {
                    nodes.append(PackedNode(threshold: .infinity, packed: UInt32(root + head)))
                    leaves.append(leafValues[queue[head]])
                } else {
                    let left = root + queue.count
                    queue.append(Int(old.left))
                    queue.append(Int(old.right))
                    nodes.append(PackedNode(threshold: old.threshold, packed: UInt32(old.feature) << Self.indexBits | UInt32(left)))
                    leaves.append(0)
                }
                head += 1
            }
        }
    }

    /// One step of a walk from node `at` for lane `lane` of a feature-major block at `x`
    /// (`x[feature * 8 + lane]`).
    @inline(__always)
    static func step(_ nodes: UnsafePointer<PackedNode>, _ at: Int, _ x: UnsafePointer<Float>, _ lane: Int) -> Int {
        let node = nodes[at]
        let left = Int(node.packed & (1 << indexBits - 1))
        let feature = Int(node.packed >> indexBits)
        return left + (x[feature &* 8 &+ lane] > node.threshold ? 1 : 0)
    }
}
