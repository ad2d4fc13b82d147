import GridMonCore
import GridMonForest
import GridMonPosix
import Synchronization

/// A model ready to score samples: the forest and how to read its features from a sample.
/// A class, so handing it out costs one reference, not a copy of the forest's arrays.
public final class ScoringModel: Sendable {
    public let forest: IsolationForest
    public let features: SampleFeatures
    public init(_ forest: IsolationForest) {
        self.forest = forest
        self.features = SampleFeatures(forest.features)
    }
}

/// Which model scores a node: its own once learned, else its tenant's, else the default.
///
/// Models are swapped whole (reload on SIGHUP, a refit finishing), so a reader always sees a
/// complete model. Threading: safe from any thread; the lock guards only the lookup tables.
public final class ModelRegistry: Sendable {
    public enum Kind: String, Sendable { case node, tenant, `default` }

    private struct Tables {
        var fallback: ScoringModel
        var tenants: [String: ScoringModel] = [:]
        var nodes: [NodeKey: ScoringModel] = [:]
    }

    private let tables: Mutex<Tables>
    /// Most per-node models kept; past it nodes stay on their tenant's model (counted).
    public let maxNodeModels: Int

    public init(default model: IsolationForest, tenants: [String: IsolationForest] = [:], maxNodeModels: Int = 10_000) {
        tables = Mutex(Tables(fallback: ScoringModel(model), tenants: tenants.mapValues(ScoringModel.init)))
        self.maxNodeModels = maxNodeModels
    }

    /// The model for `node` of `tenant`, and which kind it is.
    public func model(node: String, tenant: String) -> (ScoringModel, Kind) {
        tables.withLock { t in
            if let own = t.nodes[NodeKey(tenant: tenant, node: node)] { return (own, .node) }
            if let shared = t.tenants[tenant] { return (shared, .tenant) }
            return (t.fallback, .default)
        }
    }

    public func kind(node: String, tenant: String) -> Kind { model(node: node, tenant: tenant).1 }

    /// Installs a node's own model; false when the per-node limit is reached.
    @discardableResult
    public func setNodeModel(_ model: IsolationForest, for node: NodeKey) -> Bool {
        tables.withLock { t in
            guard t.nodes[node] != nil || t.nodes.count < maxNodeModels else { return false }
            t.nodes[node] = ScoringModel(model)
            return true
        }
    }

    /// Drops the models of nodes the server forgot.
    public func forget(_ keys: [NodeKey]) {
        tables.withLock { t in for key in keys { t.nodes[key] = nil } }
    }

    public var nodeModelCount: Int { tables.withLock { $0.nodes.count } }
    public var tenantModelCount: Int { tables.withLock { $0.tenants.count } }

    /// Replaces the default and tenant models (a reload); node models stay.
    public func replace(default model: IsolationForest, tenants: [String: IsolationForest]) {
        tables.withLock { t in
            t.fallback = ScoringModel(model)
            t.tenants = tenants.mapValues(ScoringModel.init)
        }
    }
}
