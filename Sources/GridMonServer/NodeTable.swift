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
    /// The highest score per 5 s over the last 5 minutes (the fleet view's sparkline).
    public var trail = ScoreTrail()
    public var samples: UInt64 = 0
    public var anomalies: UInt64 = 0
    public var duplicates: UInt64 = 0
}

/// The agent that holds a node another agent process asked for.
public struct NodeConflict: Error, Equatable, Sendable {
    public var peer: String
    public var instance: String
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
    public let key: NodeKey
    public var id: String { key.node }
    private let guarded: Mutex<(state: NodeState, owner: StreamOwner?, holder: Holder)>

    /// Who the owner is, for a node-id conflict's message: the agent process and its address.
    struct Holder {
        var instance = ""
        var peer = ""
    }

    init(key: NodeKey, state: NodeState) {
        self.key = key
        self.guarded = Mutex((state, nil, Holder()))
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
    /// Gives the node to `owner`, unless a live owner is another agent process: both name an
    /// instance and they differ (two machines with one node id; issue #12). The same instance,
    /// or an agent that names none, takes the node over (a reconnect whose old connection the
    /// server has not seen close yet).
    func claim(_ owner: StreamOwner, instance: String, peer: String, labels: [Label],
               nowNs: Int64) -> Result<(state: NodeState, previous: StreamOwner?), NodeConflict> {
        guarded.withLock { value in
            if let current = value.owner, current != owner, !instance.isEmpty, !value.holder.instance.isEmpty,
               value.holder.instance != instance {
                return .failure(NodeConflict(peer: value.holder.peer, instance: value.holder.instance))
            }
            let previous = value.owner == owner ? nil : value.owner
            value.owner = owner
            value.holder = Holder(instance: instance, peer: peer)
            value.state.labels = labels
            value.state.lastSeenNs = max(value.state.lastSeenNs, nowNs)
            return .success((value.state, previous))
        }
    }

    func restore(durableSeq: UInt64, nowNs: Int64) {
        guarded.withLock { value in
            value.state.durableSeq = max(value.state.durableSeq, durableSeq)
            value.state.acceptedSeq = max(value.state.acceptedSeq, durableSeq)
            value.state.lastSeenNs = max(value.state.lastSeenNs, nowNs)
        }
    }

    func release(_ owner: StreamOwner, nowNs: Int64) {
        guarded.withLock { value in
            if value.owner == owner {
                value.owner = nil
                value.holder = Holder()
                value.state.lastSeenNs = max(value.state.lastSeenNs, nowNs)
            }
        }
    }

    /// Unowned and not seen since `cutoffNs`, with everything accepted durable: safe to forget.
    func isForgettable(before cutoffNs: Int64) -> Bool {
        guarded.withLock { $0.owner == nil && $0.state.lastSeenNs < cutoffNs && $0.state.acceptedSeq <= $0.state.durableSeq }
    }
}

/// Every node the server knows, shared by all reactor threads, keyed by (tenant, node id).
///
/// A node is written by one connection at a time: when it connects again while an old
/// connection still holds it, the newer one wins; `claim` names the loser so the server can
/// close it, and the loser's later batches fail `update(ifOwnedBy:)` and are not stored.
///
/// Bounded (issue #10, defect 7): at most `capacity` nodes, at most `perTenant` of one
/// tenant (one leaked token cannot lock every other tenant out), and nodes idle longer than
/// the server's forget interval are dropped by `forgetIdle` — their samples are durable and a
/// returning agent simply starts from its own numbering.
/// Threading: safe from any thread; the table lock is taken only to find, add or drop a record.
public final class NodeTable: Sendable {
    private struct Table {
        var records: [NodeKey: NodeRecord] = [:]
        var perTenant: [String: Int] = [:]
    }
    private let table = Mutex(Table())
    /// Most nodes remembered; a Hello for a new node past this is refused.
    public let capacity: Int
    /// Most nodes of one tenant.
    public let perTenant: Int

    public init(capacity: Int = 1_000_000, perTenant: Int = 100_000) {
        self.capacity = capacity
        self.perTenant = perTenant
    }

    public var count: Int { table.withLock { $0.records.count } }

    /// Nodes per tenant (for /metrics).
    public var countsByTenant: [String: Int] { table.withLock { $0.perTenant } }

    public subscript(key: NodeKey) -> NodeState? { table.withLock { $0.records[key] }?.state }

    /// A snapshot of every node's state.
    public var all: [NodeKey: NodeState] {
        let list = table.withLock { Array($0.records.values) }
        var out: [NodeKey: NodeState] = [:]
        for record in list { out[record.key] = record.state }
        return out
    }

    /// The keys, optionally of one tenant only (a snapshot; states are read separately).
    public func keys(tenant: String? = nil) -> [NodeKey] {
        table.withLock { t in
            guard let tenant else { return Array(t.records.keys) }
            return t.records.keys.filter { $0.tenant == tenant }
        }
    }

    public enum ClaimResult {
        case claimed(record: NodeRecord, state: NodeState, previous: StreamOwner?)
        case tableFull
        case tenantFull
        /// Another live agent process streams this node (`NodeRecord.claim`).
        case conflict(NodeConflict)
    }

    /// Gives the node's stream to `owner`: the record, the node's state and the previous owner
    /// to evict; or why not (the table or the tenant's share is full, or another agent
    /// process holds the node). `instance` and `peer` name the claiming agent.
    public func claim(_ key: NodeKey, labels: [Label], by owner: StreamOwner, instance: String = "", peer: String = "",
                      nowNs: Int64) -> ClaimResult {
        let found: NodeRecord? = table.withLock { t in
            if let existing = t.records[key] { return existing }
            guard t.records.count < capacity, t.perTenant[key.tenant, default: 0] < perTenant else { return nil }
            let created = NodeRecord(key: key, state: NodeState(tenant: key.tenant, labels: labels))
            t.records[key] = created
            t.perTenant[key.tenant, default: 0] += 1
            return created
        }
        guard let record = found else {
            return table.withLock { $0.records.count >= capacity } ? .tableFull : .tenantFull
        }
        switch record.claim(owner, instance: instance, peer: peer, labels: labels, nowNs: nowNs) {
        case .success(let (state, previous)): return .claimed(record: record, state: state, previous: previous)
        case .failure(let conflict): return .conflict(conflict)
        }
    }

    /// Restores a node found in the durable store at start: its durable seq.
    public func restore(_ key: NodeKey, durableSeq: UInt64, nowNs: Int64) {
        table.withLock { t in
            if let existing = t.records[key] { return existing }
            let created = NodeRecord(key: key, state: NodeState(tenant: key.tenant, labels: []))
            t.records[key] = created
            t.perTenant[key.tenant, default: 0] += 1
            return created
        }.restore(durableSeq: durableSeq, nowNs: nowNs)
    }

    /// Drops every node that no connection holds and that was last seen before `cutoffNs`;
    /// returns their keys (so models and histories can go too).
    public func forgetIdle(before cutoffNs: Int64) -> [NodeKey] {
        let candidates = table.withLock { Array($0.records.values) }.filter { $0.isForgettable(before: cutoffNs) }
        guard !candidates.isEmpty else { return [] }
        return table.withLock { t in
            var gone: [NodeKey] = []
            for record in candidates where t.records[record.key] === record && record.isForgettable(before: cutoffNs) {
                t.records[record.key] = nil
                t.perTenant[record.key.tenant, default: 1] -= 1
                if t.perTenant[record.key.tenant] == 0 { t.perTenant[record.key.tenant] = nil }
                gone.append(record.key)
            }
            return gone
        }
    }

    /// Whether `owner` holds the node now.
    public func isHeld(_ key: NodeKey, by owner: StreamOwner) -> Bool {
        table.withLock { $0.records[key] }?.isOwned(by: owner) ?? false
    }
}
