import GridMonWire
import Synchronization

/// What the server knows about one node, keyed by node id (not by connection or thread).
public struct NodeState: Sendable {
    public var tenant: String
    public var labels: [Label]
    /// Highest seq on disk (fsync'ed by the sink): what a `Welcome` tells the agent.
    public var durableSeq: UInt64 = 0
    /// Highest seq accepted (handed to the sink, maybe not yet durable): resends at or below
    /// it are not stored again.
    public var acceptedSeq: UInt64 = 0
    /// The sink ticket of the node's latest accepted samples.
    public var lastTicket: UInt64 = 0
    public var lastSeenNs: Int64 = 0
    public var lastSample: Sample?
    public var lastScore: Double = 0
    public var samples: UInt64 = 0
    public var anomalies: UInt64 = 0
    public var duplicates: UInt64 = 0
}

/// The connection that writes a node's stream now: its reactor thread and its id.
public struct StreamOwner: Equatable, Sendable {
    public var worker: Int
    public var connection: UInt64
    public init(worker: Int, connection: UInt64) {
        self.worker = worker
        self.connection = connection
    }
}

/// One node's state and owner behind its own lock, so the per-batch update of a node
/// touches only that node's lock (uncontended: one connection owns a node at a time).
public final class NodeRecord: Sendable {
    public let id: String
    private let guarded: Mutex<(state: NodeState, owner: StreamOwner?)>

    init(id: String, state: NodeState) {
        self.id = id
        self.guarded = Mutex((state, nil))
    }

    public var state: NodeState { guarded.withLock { $0.state } }

    /// Applies `body` to the state if `owner` still holds the node; false if it lost it.
    public func update(ifOwnedBy owner: StreamOwner, _ body: (inout NodeState) -> Void) -> Bool {
        guarded.withLock { value in
            guard value.owner == owner else { return false }
            body(&value.state)
            return true
        }
    }

    public func isOwned(by owner: StreamOwner) -> Bool { guarded.withLock { $0.owner == owner } }

    /// The sink made everything up to `seq` durable.
    public func markDurable(_ seq: UInt64) {
        guarded.withLock { value in value.state.durableSeq = max(value.state.durableSeq, seq) }
    }

    /// Makes `owner` the writer; returns the previous owner, if another.
    func claim(_ owner: StreamOwner, tenant: String, labels: [Label]) -> (state: NodeState, previous: StreamOwner?) {
        guarded.withLock { value in
            let previous = value.owner == owner ? nil : value.owner
            value.owner = owner
            value.state.tenant = tenant
            value.state.labels = labels
            return (value.state, previous)
        }
    }

    func restore(tenant: String, durableSeq: UInt64) {
        guarded.withLock { value in
            value.state.tenant = tenant
            value.state.durableSeq = max(value.state.durableSeq, durableSeq)
            value.state.acceptedSeq = max(value.state.acceptedSeq, durableSeq)
        }
    }

    func release(_ owner: StreamOwner) {
        guarded.withLock { value in if value.owner == owner { value.owner = nil } }
    }
}

/// Every node the server knows, shared by all reactor threads.
///
/// A node is written by one connection at a time: when it connects again while an old
/// connection still holds it, the newer one wins; `claim` names the loser so the server can
/// close it, and the loser's later batches fail `update(ifOwnedBy:)` and are not stored.
/// Threading: safe from any thread; the table lock is taken only to find or add a record.
public final class NodeTable: Sendable {
    private let records = Mutex<[String: NodeRecord]>([:])
    /// Most nodes remembered; a Hello for a new node past this is refused.
    public let capacity: Int

    public init(capacity: Int = 1_000_000) {
        self.capacity = capacity
    }

    public var count: Int { records.withLock { $0.count } }

    public subscript(node: String) -> NodeState? { records.withLock { $0[node] }?.state }

    /// A snapshot of every node's state.
    public var all: [String: NodeState] {
        let list = records.withLock { Array($0.values) }
        var out: [String: NodeState] = [:]
        for record in list { out[record.id] = record.state }
        return out
    }

    /// Gives `node`'s stream to `owner`. Returns the record, the node's state and the
    /// previous owner to evict, or nil when the table is full.
    public func claim(_ node: String, tenant: String, labels: [Label], by owner: StreamOwner)
        -> (record: NodeRecord, state: NodeState, previous: StreamOwner?)?
    {
        let record: NodeRecord? = records.withLock { table in
            if let existing = table[node] { return existing }
            guard table.count < capacity else { return nil }
            let created = NodeRecord(id: node, state: NodeState(tenant: tenant, labels: labels))
            table[node] = created
            return created
        }
        guard let record else { return nil }
        let (state, previous) = record.claim(owner, tenant: tenant, labels: labels)
        return (record, state, previous)
    }

    /// Restores a node found in the durable store at start: its tenant and durable seq.
    public func restore(_ node: String, tenant: String, durableSeq: UInt64) {
        records.withLock { table in
            let record = table[node] ?? NodeRecord(id: node, state: NodeState(tenant: tenant, labels: []))
            table[node] = record
            return record
        }.restore(tenant: tenant, durableSeq: durableSeq)
    }

    /// Whether `owner` holds `node` now.
    public func isHeld(_ node: String, by owner: StreamOwner) -> Bool {
        records.withLock { $0[node] }?.isOwned(by: owner) ?? false
    }
}
