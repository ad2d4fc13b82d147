/// A node's identity: its tenant and its id. Two tenants may use the same node id; they are
/// two nodes that never see, evict or train each other (issue #10, defect 2).
public struct NodeKey: Hashable, Comparable, Sendable, CustomStringConvertible {
    public let tenant: String
    public let node: String
    public init(tenant: String, node: String) {
        self.tenant = tenant
        self.node = node
    }
    public static func < (a: NodeKey, b: NodeKey) -> Bool { (a.tenant, a.node) < (b.tenant, b.node) }
    public var description: String { "\(tenant)/\(node)" }
}
