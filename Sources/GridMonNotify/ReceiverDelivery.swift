import GridMonCore
import GridMonPosix
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Delivers the queue to one receiver, in order, on a thread of its own (so a receiver that is
/// down or slow holds up only itself): reads from its cursor, posts, moves the cursor once the
/// receiver said 2xx. No answer or 5xx/408/429: retried after a capped exponential backoff
/// (1 s doubling to 60 s, jittered), nothing skipped. Another 4xx: the receiver refuses that
/// payload for good; it is logged, counted as rejected and passed over, so one bad request
/// cannot block the queue. An Alertmanager also gets the firing alerts again every
/// `resendNs`, as Alertmanager expects of a client (it resolves an alert not re-sent within
/// its `resolve_timeout`).
///
/// Threading: its own thread; `stop` from the notifier's.
final class ReceiverDelivery: @unchecked Sendable {  // mutable state is its thread's own
    let config: ReceiverConfig
    let name: String
    let stats = ReceiverStats()
    private let queue: AlertQueue
    private let firing: @Sendable () -> [Alert]
    private let secret: [UInt8]?
    private let fleetURL: String
    private let resendNs: UInt64
    private let delay: LatencyHistogram
    private let stopping = Atomic<Bool>(false)
    private var thread: PosixThread?
    private var rng = SplitMix64(seed: UInt64(truncatingIfNeeded: Clock.monotonicNanos()))

    init(config: ReceiverConfig, name: String, queue: AlertQueue, firing: @escaping @Sendable () -> [Alert], secret: [UInt8]?,
         fleetURL: String, resendNs: UInt64, delay: LatencyHistogram) {
        self.config = config
        self.name = name
        self.queue = queue
        self.firing = firing
        self.secret = secret
        self.fleetURL = fleetURL
        self.resendNs = resendNs
        self.delay = delay
    }

    func start() { thread = PosixThread { [self] in run() } }

    func stop() {
        stopping.store(true, ordering: .releasing)
        thread?.join()
        thread = nil
    }

    private func mine(_ alert: Alert) -> Bool { config.tenant == nil || config.tenant == alert.tenant }

    private func run() {
        let poster = HTTPPoster()
        var cursor = queue.cursor(config.id)
        var failuresInARow = 0
        var notBeforeNs: UInt64 = 0
        var lastResendNs = Clock.monotonicNanos()
        while !stopping.load(ordering: .acquiring) {
            let now = Clock.monotonicNanos()
            guard now >= notBeforeNs else { sleep(); continue }
            var batch = queue.after(cursor, limit: 64)
            if config.kind != .alertmanager {
                // Other tenants' notifications are passed over (one cursor save for all of
                // them); a webhook gets one notification per request.
                let skipped = batch.prefix { !mine($0.alert) }.count
                if skipped > 0 && skipped == batch.count {
                    cursor = batch.last!.number
                    queue.delivered(config.id, through: cursor)
                    continue
                }
                batch = Array(batch.dropFirst(skipped).prefix(1))  // delivered, it moves the cursor past the skipped too
            }
            let alerts = batch.map(\.alert).filter(mine)
            var body: [UInt8]?
            var resend = false
            if !alerts.isEmpty {
                body = payload(alerts)
            } else if config.kind == .alertmanager && now - lastResendNs >= resendNs {
                lastResendNs = now
                let open = firing().filter(mine)
                if !open.isEmpty { body = AlertPayloads.alertmanager(open, fleetURL: fleetURL); resend = true }
            }
            guard let body else { sleep(); continue }
            let answer = poster.post(config.postURL, body: body, headers: headers(body))
            switch answer.status {
            case 200..<300:
                if resend { stats.resends.add(); break }
                let sentAt = Clock.unixNanos()
                for alert in alerts where alert.event == .firing {
                    if let raised = alert.raisedNs { delay.record(Double(max(0, sentAt - raised)) / 1e9) }
                }
                stats.sent.add(UInt64(alerts.count))
                cursor = batch.last!.number
                queue.delivered(config.id, through: cursor)
                if failuresInARow > 0 { Log.info("notifications_recovered", ["receiver": name]) }
                failuresInARow = 0
                if config.kind == .alertmanager { lastResendNs = now }
            case 400..<500 where answer.status != 408 && answer.status != 429:
                stats.rejected.add(UInt64(resend ? 0 : alerts.count))
                Log.error("notification_rejected", ["receiver": name, "target": config.safeName, "status": answer.status, "answer": answer.text.prefix(200),
                                                    "note": "the receiver refuses this payload; passed over"])
                if !resend {
                    cursor = batch.last!.number
                    queue.delivered(config.id, through: cursor)
                }
            default:
                stats.failures.add()
                failuresInARow += 1
                let cap = min(60.0, Double(1 << min(failuresInARow - 1, 6)))
                let wait = cap * (0.5 + 0.5 * rng.nextUnit())
                notBeforeNs = Clock.monotonicNanos() + UInt64(wait * 1e9)
                if failuresInARow == 1 || failuresInARow % 10 == 0 {
                    Log.error("notification_failed", ["receiver": name, "target": config.safeName, "status": answer.status, "error": answer.text.prefix(200),
                                                      "failures_in_a_row": failuresInARow, "retry_in_s": (wait * 10).rounded() / 10,
                                                      "note": "kept in the queue; retrying"])
                }
            }
        }
    }

    private func payload(_ alerts: [Alert]) -> [UInt8] {
        switch config.kind {
        case .alertmanager: AlertPayloads.alertmanager(alerts, fleetURL: fleetURL)
        case .webhook: AlertPayloads.webhook(alerts[0], fleetURL: fleetURL)
        case .slack: AlertPayloads.slack(alerts[0], fleetURL: fleetURL)
        }
    }

    private func headers(_ body: [UInt8]) -> [String] {
        guard config.kind == .webhook, let secret else { return [] }
        let timestamp = Clock.unixNanos() / 1_000_000_000
        return ["\(WebhookSignature.timestampHeader): \(timestamp)",
                "\(WebhookSignature.signatureHeader): \(WebhookSignature.sign(secret: secret, timestamp: timestamp, body: body))"]
    }

    /// 50 ms: how long a new notification may wait for this thread.
    private func sleep() {
        var ts = timespec(tv_sec: 0, tv_nsec: 50_000_000)
        nanosleep(&ts, nil)
    }
}
