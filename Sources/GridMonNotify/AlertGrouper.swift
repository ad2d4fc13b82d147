import GridMonCore
import GridMonDetect

/// Turns incident openings and closings into alerts to send: one `firing` when a node's
/// incident opens, one `resolved` when it closed and stayed closed for `holdNs` (issue #14,
/// item 3: flapping suppressed). A node that reopens an incident within the hold gets no new
/// notification: the new incident is folded into the alert still firing, which resolves once
/// the node stays quiet for the hold (the idea of Prometheus's `keep_firing_for`). So a node
/// that flaps for an hour sends one firing and one resolved, and a resolve is late by the hold.
///
/// Pure state: the caller passes the time in and sends what comes out, in order. Bounded by the
/// nodes with an alert (one each). Not thread-safe: the notifier's thread owns it.
public struct AlertGrouper: Sendable {
    /// A peak score at or above this makes the alert `critical` (twice the detector's default
    /// threshold of 1), else `warning`.
    public static let criticalScore = 2.0

    public let holdNs: Int64
    /// Alerts firing (their incident open, or closed and held), by node.
    public private(set) var firing: [NodeKey: Alert] = [:]
    /// Nodes whose incident closed: when the hold ends, and the flagged samples of the
    /// incidents closed so far.
    private var held: [NodeKey: (untilNs: Int64, closedFlagged: Int)] = [:]
    /// Flagged samples of the folded incidents that closed before the open one.
    private var closedFlagged: [NodeKey: Int] = [:]
    /// Incidents folded into a firing alert (counted; not notified).
    public private(set) var folded: UInt64 = 0

    public init(holdNs: Int64) {
        self.holdNs = max(0, holdNs)
    }

    /// The alerts `event` starts or ends now (`nowNs`: the server's clock).
    public mutating func receive(_ event: IncidentEvent, nowNs: Int64) -> [Alert] {
        switch event {
        case .opened(let incident):
            let key = incident.key
            if var alert = firing[key] {
                // Reopened within the hold (or a second opening): the alert goes on firing.
                closedFlagged[key] = held.removeValue(forKey: key)?.closedFlagged ?? closedFlagged[key] ?? 0
                alert.incidents += 1
                alert.endNs = nil
                alert.peakScore = max(alert.peakScore, incident.peakScore)
                alert.flagged = (closedFlagged[key] ?? 0) + incident.flagged
                firing[key] = alert
                folded += 1
                return []
            }
            let alert = Alert(firing: incident, severity: incident.peakScore >= Self.criticalScore ? "critical" : "warning", raisedNs: nowNs)
            firing[key] = alert
            closedFlagged[key] = 0
            return [alert]
        case .closed(let incident):
            let key = incident.key
            guard var alert = firing[key] else { return [] }  // opened before a restart: resolved then
            alert.peakScore = max(alert.peakScore, incident.peakScore)
            let flagged = (closedFlagged[key] ?? 0) + incident.flagged
            alert.flagged = flagged
            if !incident.drivers.isEmpty { alert.drivers = incident.drivers }
            alert.endNs = incident.endNs ?? nowNs
            firing[key] = alert
            guard holdNs > 0 else { return [resolve(key)] }
            held[key] = (nowNs + holdNs, flagged)
            return []
        }
    }

    /// The alerts whose hold ended by `nowNs`, resolved (oldest hold first).
    public mutating func tick(nowNs: Int64) -> [Alert] {
        let due = held.filter { $0.value.untilNs <= nowNs }.sorted { ($0.value.untilNs, $0.key) < ($1.value.untilNs, $1.key) }
        return due.map { resolve($0.key) }
    }

    /// When the next hold ends, if any.
    public var nextDeadlineNs: Int64? { held.values.map(\.untilNs).min() }

    /// Resolves the alert of a node the server forgot (silent past its idle limit).
    public mutating func forget(_ key: NodeKey, nowNs: Int64) -> [Alert] {
        guard firing[key] != nil else { return [] }
        if firing[key]!.endNs == nil { firing[key]!.endNs = nowNs }
        return [resolve(key, reason: "the node went silent and was forgotten")]
    }

    private mutating func resolve(_ key: NodeKey, reason: String? = nil) -> Alert {
        let alert = firing.removeValue(forKey: key)!
        held[key] = nil
        closedFlagged[key] = nil
        return alert.resolved(endNs: alert.endNs ?? 0, reason: reason)
    }
}
