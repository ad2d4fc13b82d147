import GridMonCore
import Synchronization

/// The server's incidents: every node's open one and the most recent closed ones, with totals
/// per tenant, for `/api/v1/incidents` and `/metrics` (issue #11, item 3).
///
/// Bounded: one open incident per node (nodes are bounded by the node table), `maxRecent`
/// closed ones (the oldest go first; the store keeps every one as a `gridmon_incidents` point),
/// totals per tenant. Threading: safe from any thread; one lock, held for a few appends.
public final class IncidentBook: Sendable {
    private struct State {
        var open: [NodeKey: Incident] = [:]
        var recent: [Incident] = []
        var recentStart = 0
        var openedByTenant: [String: UInt64] = [:]
        var closed: UInt64 = 0
    }

    public let maxRecent: Int
    private let state = Mutex(State())

    public init(maxRecent: Int = 1000) {
        self.maxRecent = max(1, maxRecent)
    }

    /// Records opened and closed incidents.
    public func record(_ events: [IncidentEvent]) {
        guard !events.isEmpty else { return }
        state.withLock { s in
            for event in events {
                switch event {
                case .opened(let incident):
                    s.open[incident.key] = incident
                    s.openedByTenant[incident.tenant, default: 0] += 1
                case .closed(let incident):
                    s.open[incident.key] = nil
                    s.closed += 1
                    if s.recent.count < maxRecent {
                        s.recent.append(incident)
                    } else {
                        s.recent[s.recentStart] = incident
                        s.recentStart = (s.recentStart + 1) % maxRecent
                    }
                }
            }
        }
    }

    /// Drops the open incidents of nodes the server forgot (their detectors are gone).
    public func forget(_ keys: [NodeKey]) {
        state.withLock { s in for key in keys { s.open[key] = nil } }
    }

    /// Open incidents (oldest first) and closed ones (newest first), optionally of one tenant.
    public func list(tenant: String? = nil, limit: Int = 100) -> (open: [Incident], recent: [Incident]) {
        state.withLock { s in
            let open = s.open.values.filter { tenant == nil || $0.tenant == tenant }.sorted { ($0.startNs, $0.id) < ($1.startNs, $1.id) }
            var recent: [Incident] = []
            let count = s.recent.count
            var i = 0
            while i < count && recent.count < limit {
                // Newest first: the slot before `recentStart`, walking back.
                let incident = s.recent[(s.recentStart - 1 - i + 2 * count) % count]
                if tenant == nil || incident.tenant == tenant { recent.append(incident) }
                i += 1
            }
            return (Array(open.prefix(limit)), recent)
        }
    }

    public var openCount: Int { state.withLock { $0.open.count } }
    public var openedByTenant: [String: UInt64] { state.withLock { $0.openedByTenant } }
    public var closedCount: UInt64 { state.withLock { $0.closed } }
}
