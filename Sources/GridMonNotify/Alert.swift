import GridMonCore
import GridMonDetect

/// One notification about one alert: it fires (an incident opened) or it resolves (the
/// incident closed and stayed closed through the hold, or the server restarted). What the
/// durable queue stores and every receiver formats in its own way. Pure value.
///
/// An alert is a node's trouble as people are told about it: usually one incident, but
/// incidents of a flapping node that reopen within the hold are folded into one alert
/// (`AlertGrouper`), so its id is the id of its first incident.
public struct Alert: Sendable, Equatable, Codable {
    public enum Event: String, Sendable, Codable {
        case firing, resolved
    }

    public var event: Event
    /// The first incident's id: the alert's identity (deduplication key with `event`).
    public var id: UInt64
    public var tenant: String
    public var node: String
    /// Sample time of the first flagged sample (ns since the epoch).
    public var startNs: Int64
    /// When it ended (sample time of the last flagged sample, or the restart); nil while firing.
    public var endNs: Int64?
    public var peakScore: Double
    /// Flagged samples over its incidents.
    public var flagged: Int
    /// Incidents folded into it (1 unless the node flapped).
    public var incidents: Int
    public var drivers: [IncidentDriver]
    /// `warning`, or `critical` when the peak score reached `AlertGrouper.criticalScore`;
    /// fixed when it fires, so Alertmanager sees the same label set on resolve.
    public var severity: String
    /// Why it resolved, when not because the node went quiet (a server restart).
    public var reason: String?
    /// The top metric when it fired: Alertmanager's `metric` label. Fixed, like `severity`,
    /// because the drivers may change by the close and a changed label set would be another
    /// alert to Alertmanager (the firing one would never resolve).
    public var metricLabel: String
    /// When the server took in the sample that opened its first incident (its own clock, not
    /// the sample's time, which an agent's clock or a replay sets): what the notification delay
    /// is measured from.
    public var raisedNs: Int64?

    public var key: NodeKey { NodeKey(tenant: tenant, node: node) }
    /// The drivers in one line.
    public var summary: String { drivers.isEmpty ? "no metric stands out" : drivers.map(\.summary).joined(separator: ", ") }
    /// `"<id>-firing"`: one notification's idempotency key.
    public var dedupKey: String { "\(id)-\(event.rawValue)" }

    public init(firing incident: Incident, severity: String, raisedNs: Int64? = nil) {
        event = .firing
        id = incident.id
        tenant = incident.tenant
        node = incident.node
        startNs = incident.startNs
        endNs = nil
        peakScore = incident.peakScore
        flagged = incident.flagged
        incidents = 1
        drivers = incident.drivers
        self.severity = severity
        metricLabel = incident.drivers.first?.metric ?? "none"
        self.raisedNs = raisedNs
    }

    /// The same alert, resolved at `endNs`.
    public func resolved(endNs: Int64, reason: String? = nil) -> Alert {
        var alert = self
        alert.event = .resolved
        alert.endNs = endNs
        alert.reason = reason
        return alert
    }
}
