import GridMonWire

/// What the server knows about one node, keyed by node id (not by connection or thread).
public struct NodeState: Sendable {
    public var tenant: String
    public var labels: [Label]
    /// Highest seq stored; samples at or below it are acked, not stored again.
    public var durableSeq: UInt64 = 0
    public var lastSeenNs: Int64 = 0
    public var lastSample: Sample?
    public var lastScore: Double = 0
    public var samples: UInt64 = 0
    public var anomalies: UInt64 = 0
    public var duplicates: UInt64 = 0
}

/// Every node's state, and which connection holds each node's stream now.
///
/// A node is written by one connection at a time: when it connects again while an old
/// connection still holds it, the newer one wins and the older is evicted.
/// Threading: confined to the reactor thread that owns it.
public final class NodeTable {
    public typealias Evict = (_ node: String) -> Void

    private(set) var nodes: [String: NodeState] = [:]
    private var owners: [String: (connection: UInt64, evict: Evict)] = [:]

    public init() {}

    public var count: Int { nodes.count }
    public subscript(node: String) -> NodeState? { nodes[node] }
    public var all: [String: NodeState] { nodes }

    /// Gives `node`'s stream to `connection`, evicting any other holder, and returns the
    /// node's state (new nodes start at durable seq 0).
    public func claim(_ node: String, tenant: String, labels: [Label], by connection: UInt64, evict: @escaping Evict) -> NodeState {
        if let previous = owners[node], previous.connection != connection {
            previous.evict(node)
        }
        owners[node] = (connection, evict)
        var state = nodes[node] ?? NodeState(tenant: tenant, labels: labels)
        state.tenant = tenant
        state.labels = labels
        nodes[node] = state
        return state
    }

    /// Releases `node` if `connection` still holds it.
    public func release(_ node: String, by connection: UInt64) {
        if owners[node]?.connection == connection { owners[node] = nil }
    }

    /// Whether `connection` holds `node` now.
    public func isHeld(_ node: String, by connection: UInt64) -> Bool {
        owners[node]?.connection == connection
    }

    /// Applies `body` to the state of a known node.
    public func update(_ node: String, _ body: (inout NodeState) -> Void) {
        if var state = nodes[node] {
            body(&state)
            nodes[node] = state
        }
    }
}
