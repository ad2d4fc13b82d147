import GridMonCore

/// The bodies each kind of receiver gets, as bytes. Pure.
///
/// - Alertmanager (`POST /api/v2/alerts`, API v2's `postableAlerts`): an array of alerts with
///   `labels`, `annotations`, `startsAt`, `endsAt` (only when resolved) and `generatorURL`.
///   Labels are fixed when the alert fires, so firing, re-sends and resolve share one
///   fingerprint: `alertname="GridMonAnomaly"`, `node`, `tenant`, `severity`, `metric` (the top
///   driver when it fired), `incident` (the alert id).
/// - Webhook (version 1, documented in the README): one JSON object per notification.
/// - Slack-compatible: `{"text": …}` with a link to the fleet view.
public enum AlertPayloads {
    public static func alertmanager(_ alerts: [Alert], fleetURL: String) -> [UInt8] {
        var out = "["
        for (i, alert) in alerts.enumerated() {
            if i > 0 { out += "," }
            out += "{\"labels\":{"
            out += pairs([("alertname", "GridMonAnomaly"), ("node", alert.node), ("tenant", alert.tenant),
                          ("severity", alert.severity), ("metric", alert.metricLabel), ("incident", String(alert.id))])
            out += "},\"annotations\":{"
            out += pairs([("summary", "\(alert.node): \(alert.summary)"), ("description", description(alert)),
                          ("fleet_view", fleetURL)])
            out += "},\"startsAt\":" + JSONText.quoted(RFC3339.format(ns: alert.startNs))
            if alert.event == .resolved, let end = alert.endNs {
                out += ",\"endsAt\":" + JSONText.quoted(RFC3339.format(ns: max(end, alert.startNs)))
            }
            out += ",\"generatorURL\":" + JSONText.quoted(fleetURL) + "}"
        }
        return Array((out + "]").utf8)
    }

    /// Webhook payload version 1: `{"version":1,"id":"<alert>-<event>","event":"firing"|"resolved",
    /// "alert":{…},"fleet_view":URL}`.
    public static func webhook(_ alert: Alert, fleetURL: String) -> [UInt8] {
        var out = "{\"version\":1,\"id\":" + JSONText.quoted(alert.dedupKey) + ",\"event\":" + JSONText.quoted(alert.event.rawValue)
        out += ",\"alert\":{\"id\":\(alert.id),\"tenant\":" + JSONText.quoted(alert.tenant) + ",\"node\":" + JSONText.quoted(alert.node)
        out += ",\"severity\":" + JSONText.quoted(alert.severity)
        out += ",\"start\":" + JSONText.quoted(RFC3339.format(ns: alert.startNs))
        out += ",\"end\":" + (alert.event == .resolved ? JSONText.quoted(RFC3339.format(ns: alert.endNs ?? alert.startNs)) : "null")
        out += ",\"peak_score\":" + number(alert.peakScore) + ",\"flagged_samples\":\(alert.flagged),\"incidents\":\(alert.incidents)"
        out += ",\"summary\":" + JSONText.quoted(alert.summary)
        out += ",\"reason\":" + (alert.reason.map(JSONText.quoted) ?? "null")
        out += ",\"drivers\":["
        for (i, d) in alert.drivers.enumerated() {
            if i > 0 { out += "," }
            out += "{\"metric\":" + JSONText.quoted(d.metric) + ",\"direction\":" + JSONText.quoted(d.direction)
            out += ",\"from\":" + number(d.from) + ",\"to\":" + number(d.to) + ",\"after_s\":\(d.afterNs / 1_000_000_000)}"
        }
        out += "]},\"fleet_view\":" + JSONText.quoted(fleetURL) + "}"
        return Array(out.utf8)
    }

    /// A Slack incoming-webhook message (also understood by Mattermost and Rocket.Chat).
    public static func slack(_ alert: Alert, fleetURL: String) -> [UInt8] {
        let headline = alert.event == .firing
            ? ":rotating_light: GridMon anomaly on *\(alert.node)* (tenant \(alert.tenant), \(alert.severity))"
            : ":white_check_mark: GridMon anomaly on *\(alert.node)* (tenant \(alert.tenant)) resolved"
        var text = headline + ": " + alert.summary
        if let reason = alert.reason { text += " (\(reason))" }
        text += " <\(fleetURL)|fleet view>"
        return Array(("{\"text\":" + JSONText.quoted(text) + "}").utf8)
    }

    static func description(_ alert: Alert) -> String {
        var text = "Anomaly on \(alert.node) (tenant \(alert.tenant)) since \(RFC3339.format(ns: alert.startNs)): \(alert.summary). "
        text += "Peak score \(number(alert.peakScore)), \(alert.flagged) flagged samples"
        if alert.incidents > 1 { text += " over \(alert.incidents) incidents (the node flapped)" }
        if let reason = alert.reason { text += "; resolved because \(reason)" }
        return text + "."
    }

    private static func pairs(_ items: [(String, String)]) -> String {
        items.map { JSONText.quoted($0.0) + ":" + JSONText.quoted($0.1) }.joined(separator: ",")
    }

    /// A JSON number (scores are finite; anything else is written as 0 rather than break JSON).
    static func number(_ v: Double) -> String {
        guard v.isFinite else { return "0" }
        return String((v * 1000).rounded() / 1000)
    }
}

