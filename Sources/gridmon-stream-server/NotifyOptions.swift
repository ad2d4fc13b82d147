import ArgumentParser
import GridMonConfig
import GridMonCore
import GridMonNotify
import GridMonPosix
import GridMonServer

/// The server's notification flags (issue #14): where incidents go and how.
struct NotifyOptions: ParsableArguments {
    @Option(help: "Alertmanager to post alerts to (its base URL; /api/v2/alerts is added); repeat for an HA pair: each gets every alert. [GRIDMON_ALERTMANAGER_URLS, comma-separated]")
    var alertmanagerUrl: [String] = Settings.shared.list("alertmanager-url", variable: "GRIDMON_ALERTMANAGER_URLS") ?? []

    @Option(help: "JSON webhook, [TENANT=]URL (only TENANT's alerts when given); repeatable. Payload: see the README. [GRIDMON_WEBHOOK_URLS]")
    var webhookUrl: [String] = Settings.shared.list("webhook-url", variable: "GRIDMON_WEBHOOK_URLS") ?? []

    @Option(help: "Slack-compatible incoming webhook ({\"text\": …}), [TENANT=]URL; repeatable. [GRIDMON_SLACK_URLS]")
    var slackUrl: [String] = Settings.shared.list("slack-url", variable: "GRIDMON_SLACK_URLS") ?? []

    @Option(help: "File holding the shared secret that signs webhook payloads (HMAC-SHA256, X-GridMon-Signature); mode 0600. [GRIDMON_WEBHOOK_SECRET_FILE]")
    var webhookSecretFile: String?

    @Option(help: "An alert resolves only after its node stayed quiet this long; an incident reopening meanwhile is folded into it (flapping: one alert). Default 5m. [GRIDMON_NOTIFY_RESOLVE_HOLD]")
    var notifyResolveHold: String?

    @Option(help: "How often firing alerts are re-sent to Alertmanager (it resolves an alert not re-sent within its resolve_timeout, 5m by default). Default 1m. [GRIDMON_ALERTMANAGER_RESEND]")
    var alertmanagerResend: String?

    @Option(help: "Most bytes of queued notifications on disk (oldest dropped past it, counted). Default 16MiB. [GRIDMON_NOTIFY_QUEUE_BYTES]")
    var notifyQueueBytes: String?

    @Option(help: "The fleet view's URL as people reach it, linked from every notification. Default: http://ADMIN-LISTEN/. [GRIDMON_FLEET_URL]")
    var fleetUrl: String?

    /// The notifier's options, or nil when no receiver is configured; throws a message naming
    /// the flag and its variable when a value is wrong.
    func options(adminListen: String) throws -> Notifier.Options? {
        // A flag wins over its variable and the config file (no default on the @Option: an
        // Optional option with a default is deprecated in swift-argument-parser).
        let webhookSecretFile = self.webhookSecretFile ?? Settings.shared.text("webhook-secret-file")?.text
        let notifyResolveHold = self.notifyResolveHold ?? Settings.shared.text("notify-resolve-hold")?.text
        let alertmanagerResend = self.alertmanagerResend ?? Settings.shared.text("alertmanager-resend")?.text
        let notifyQueueBytes = self.notifyQueueBytes ?? Settings.shared.text("notify-queue-bytes")?.text
        let fleetUrl = self.fleetUrl ?? Settings.shared.text("fleet-url")?.text
        var receivers: [ReceiverConfig] = []
        let sources: [([String], String, String, ReceiverConfig.Kind)] = [
            (alertmanagerUrl, "alertmanager-url", "GRIDMON_ALERTMANAGER_URLS", .alertmanager),
            (webhookUrl, "webhook-url", "GRIDMON_WEBHOOK_URLS", .webhook),
            (slackUrl, "slack-url", "GRIDMON_SLACK_URLS", .slack),
        ]
        for (values, name, variable, kind) in sources {
            for text in values {
                switch ReceiverConfig.parse(text, kind: kind) {
                case .success(let receiver): receivers.append(receiver)
                case .failure(let error): throw SettingValues.Problem(key: Settings.shared.origin(name, variable: variable), message: error.description)
                }
            }
        }
        guard !receivers.isEmpty else { return nil }
        let secret: [UInt8]?
        if let path = webhookSecretFile {
            try StreamServer.checkPrivate(path)
            // The first line, without its line break (files end in one) or spaces around it.
            let line = try Files.readText(path, maxBytes: 4096).split(separator: "\n", omittingEmptySubsequences: false).first ?? ""
            let text = String(line.filter { $0 != "\r" }).trimmingSpaces()
            guard !text.isEmpty else { throw SettingValues.Problem(key: Settings.shared.origin("webhook-secret-file"), message: "\(path) is empty") }
            secret = Array(text.utf8)
        } else {
            secret = nil
        }
        let admin = adminListen == "off" ? "127.0.0.1:7071" : adminListen
        var options = Notifier.Options(receivers: receivers, webhookSecret: secret,
                                       fleetURL: fleetUrl ?? "http://\(admin)/")
        func seconds(_ text: String?, _ name: String, _ fallback: Double) throws -> Double {
            guard let text else { return fallback }
            guard let value = SettingValues.seconds(text), value >= 0 else {
                throw SettingValues.Problem(key: Settings.shared.origin(name), message: "expected a duration (30s, 5m), got '\(text)'")
            }
            return value
        }
        options.resolveHoldNs = Int64(try seconds(notifyResolveHold, "notify-resolve-hold", 300) * 1e9)
        let resend = try seconds(alertmanagerResend, "alertmanager-resend", 60)
        guard resend >= 1 else { throw SettingValues.Problem(key: Settings.shared.origin("alertmanager-resend"), message: "must be at least 1s, got '\(alertmanagerResend ?? "")'") }
        options.alertmanagerResendNs = UInt64(resend * 1e9)
        if let text = notifyQueueBytes {
            guard let bytes = SettingValues.bytes(text), bytes >= 2 << 20 else {
                throw SettingValues.Problem(key: Settings.shared.origin("notify-queue-bytes"), message: "expected a size of at least 2MiB, got '\(text)'")
            }
            options.queueMaxBytes = bytes
        }
        return options
    }
}
