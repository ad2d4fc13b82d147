import GridMonCore

/// A metric that drove an incident: where it was before the trouble and where it went.
public struct IncidentDriver: Sendable, Equatable, Codable {
    public var metric: String
    /// "up" or "down".
    public var direction: String
    /// The metric's smoothed level before the incident (an exponentially weighted mean of its
    /// quiet samples).
    public var from: Double
    /// Its value furthest from `from` during the incident so far.
    public var to: Double
    /// Nanoseconds from the incident's start to `to`.
    public var afterNs: Int64

    public init(metric: String, direction: String, from: Double, to: Double, afterNs: Int64) {
        self.metric = metric
        self.direction = direction
        self.from = from
        self.to = to
        self.afterNs = afterNs
    }

    /// `memory ↑ 31.2 (48.0 → 79.2, +65 %) in 12m`.
    public var summary: String {
        let change = to - from
        var text = "\(metric) \(direction == "up" ? "↑" : "↓") \(Self.format(abs(change))) (\(Self.format(from)) → \(Self.format(to))"
        if from != 0 { text += ", \(change >= 0 ? "+" : "")\(Self.whole(change / abs(from) * 100)) %" }
        return text + ") in \(Self.duration(afterNs))"
    }

    /// One decimal and an SI suffix. Values come from a peer's samples (any finite Double),
    /// so nothing here converts to `Int` where it could trap.
    static func format(_ v: Double) -> String {
        guard v.isFinite else { return "\(v)" }
        let a = abs(v)
        if a >= 1e15 { return "\(v)" }
        if a >= 1e9 { return "\((v / 1e8).rounded(.towardZero) / 10)G" }
        if a >= 1e6 { return "\((v / 1e5).rounded(.towardZero) / 10)M" }
        if a >= 1e4 { return "\((v / 1e2).rounded(.towardZero) / 10)k" }
        return "\((v * 10).rounded() / 10)"
    }

    /// A whole number, or the Double as is when it is too large (or not finite) for `Int`.
    static func whole(_ v: Double) -> String {
        v.isFinite && abs(v) < 1e15 ? String(Int(v.rounded())) : "\(v)"
    }

    static func duration(_ ns: Int64) -> String {
        let s = max(0, ns / 1_000_000_000)
        if s < 120 { return "\(s)s" }
        if s < 7200 { return "\(s / 60)m" }
        return "\(s / 3600)h"
    }
}

/// One incident of one node: from the first of the flagged samples that opened it to the last
/// flagged sample before it closed (issue #11, item 3).
public struct Incident: Sendable, Equatable, Codable {
    public var id: UInt64
    public var tenant: String
    public var node: String
    /// Sample time of its first flagged sample.
    public var startNs: Int64
    /// Sample time of its last flagged sample; nil while open.
    public var endNs: Int64?
    /// Sample time of the sample that opened it (k of n flagged).
    public var openedNs: Int64
    public var peakScore: Double
    /// Flagged samples so far.
    public var flagged: Int
    /// The metrics that drove it, most to least (at most three).
    public var drivers: [IncidentDriver]

    public init(id: UInt64, tenant: String, node: String, startNs: Int64, endNs: Int64?, openedNs: Int64, peakScore: Double,
                flagged: Int, drivers: [IncidentDriver]) {
        self.id = id
        self.tenant = tenant
        self.node = node
        self.startNs = startNs
        self.endNs = endNs
        self.openedNs = openedNs
        self.peakScore = peakScore
        self.flagged = flagged
        self.drivers = drivers
    }

    public var isOpen: Bool { endNs == nil }
    public var key: NodeKey { NodeKey(tenant: tenant, node: node) }
    /// The drivers in one line, for logs and the demo.
    public var summary: String { drivers.isEmpty ? "no metric stands out" : drivers.map(\.summary).joined(separator: ", ") }
}

/// A change of a node's incident state, to log, count and store.
public enum IncidentEvent: Sendable, Equatable {
    case opened(Incident)
    case closed(Incident)

    public var incident: Incident {
        switch self {
        case .opened(let i), .closed(let i): i
        }
    }
}
