import Foundation
import GridMonCore
import GridMonDetect
import GridMonPosix
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Gets incidents to people (issue #14): folds them into alerts (`AlertGrouper`), queues the
/// alerts durably (`AlertQueue`) and delivers them to every configured receiver
/// (`ReceiverDelivery`, a thread each).
///
/// Alerts firing are also kept in `firing.json` (replaced atomically, fsync'ed, on every
/// change): a server that stops or crashes while an alert fires resolves it when it starts
/// again, with the reason, because the node's detector starts over (learning) and could
/// never close it. So every firing alert gets its resolve, once.
///
/// Threading: `submit` and `forget` from any thread (reactor threads) into a bounded inbox;
/// one thread of its own runs the grouper and the queue's commits; `/metrics` from any thread.
public final class Notifier: @unchecked Sendable {  // the grouper is the notifier thread's own; the rest is locked or atomic
    public struct Options: Sendable {
        public var receivers: [ReceiverConfig]
        /// Shared secret that signs webhook payloads (nil: unsigned).
        public var webhookSecret: [UInt8]?
        /// Linked from every notification (the admin port's fleet view).
        public var fleetURL: String
        public var resolveHoldNs: Int64 = 300_000_000_000
        public var alertmanagerResendNs: UInt64 = 60_000_000_000
        public var queueMaxBytes = 16 << 20

        public init(receivers: [ReceiverConfig], webhookSecret: [UInt8]?, fleetURL: String) {
            self.receivers = receivers
            self.webhookSecret = webhookSecret
            self.fleetURL = fleetURL
        }
    }

    /// Incident events waiting for the notifier thread; past this many, new ones are dropped
    /// (counted): only a stalled notifier thread lets it fill.
    static let maxInbox = 100_000

    private let options: Options
    private let queue: AlertQueue
    private let directory: String
    private var grouper: AlertGrouper
    /// The queue's last commit failed (the notifier thread's own).
    private var queueFailing = false
    private let deliveries: [ReceiverDelivery]
    /// Events with the time they were submitted (the server's clock as the sample arrived).
    private let inbox = Mutex<(events: [(IncidentEvent, Int64)], forgotten: [NodeKey])>(([], []))
    private let firingSnapshot = FiringAlerts()
    private let stopping = Atomic<Bool>(false)
    private var thread: PosixThread?
    private let delay = LatencyHistogram(bounds: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300])
    let queued = Atomic<UInt64>(0)
    /// The grouper's folded incidents, published for /metrics.
    private let folds = Atomic<UInt64>(0)
    let inboxDropped = Atomic<UInt64>(0)

    /// Opens the queue in `directory` (created 0700) and resolves the alerts a previous run
    /// left firing.
    public init(directory: String, options: Options) throws {
        self.options = options
        self.directory = directory
        grouper = AlertGrouper(holdNs: options.resolveHoldNs)
        queue = try AlertQueue(directory: directory, receivers: options.receivers.map(\.id), maxBytes: options.queueMaxBytes)
        var counts: [ReceiverConfig.Kind: Int] = [:]
        var made: [ReceiverDelivery] = []
        for config in options.receivers {
            counts[config.kind, default: 0] += 1
            made.append(ReceiverDelivery(config: config, name: "\(config.kind.rawValue)-\(counts[config.kind]!)", queue: queue,
                                         firing: { [firingSnapshot] in firingSnapshot.alerts }, secret: options.webhookSecret,
                                         fleetURL: options.fleetURL, resendNs: options.alertmanagerResendNs, delay: delay))
        }
        deliveries = made
        var left: [Alert] = []
        if access(directory + "/firing.json", F_OK) == 0 {
            do { left = try JSONDecoder().decode([Alert].self, from: Data(try Files.read(directory + "/firing.json", maxBytes: 256 << 20))) } catch {
                Log.error("notification_state_unreadable", ["file": directory + "/firing.json", "error": error,
                                                            "note": "alerts that were firing will not be resolved"])
            }
        }
        if !left.isEmpty {
            let now = Clock.unixNanos()
            let resolved = left.map { $0.resolved(endNs: max(now, $0.startNs), reason: "the server restarted and the node's detector learns again") }
            try queue.append(resolved)
            queued.add(UInt64(resolved.count))
            Log.info("notifications_resolved_at_start", ["alerts": resolved.count])
        }
        try saveFiring()
    }

    /// Hands incident events over (from a reactor thread); never blocks on I/O.
    public func submit(_ events: [IncidentEvent]) {
        guard !events.isEmpty else { return }
        let now = Clock.unixNanos()
        let accepted = inbox.withLock { box -> Bool in
            guard box.events.count + events.count <= Self.maxInbox else { return false }
            box.events += events.map { ($0, now) }
            return true
        }
        if !accepted { inboxDropped.add(UInt64(events.count)) }
    }

    /// Nodes the server forgot: their firing alerts resolve.
    public func forget(_ keys: [NodeKey]) {
        guard !keys.isEmpty else { return }
        inbox.withLock { $0.forgotten += keys.prefix(max(0, Self.maxInbox - $0.forgotten.count)) }
    }

    public func start() {
        guard thread == nil else { return }
        thread = PosixThread { [self] in loop() }
        for delivery in deliveries { delivery.start() }
    }

    /// Queues what was submitted and stops; undelivered notifications stay queued for the next
    /// start, and alerts still firing resolve then.
    public func stop() {
        guard let thread else { return }
        stopping.store(true, ordering: .releasing)
        thread.join()
        self.thread = nil
        turn()
        for delivery in deliveries { delivery.stop() }
    }

    private func loop() {
        while !stopping.load(ordering: .acquiring) {
            turn()
            var ts = timespec(tv_sec: 0, tv_nsec: 20_000_000)
            nanosleep(&ts, nil)
        }
    }

    /// One pass: incidents in, alerts out to the queue.
    private func turn() {
        let (events, forgotten) = inbox.withLock { box in
            defer { box = ([], []) }
            return box
        }
        let now = Clock.unixNanos()
        var alerts: [Alert] = []
        for (event, submitted) in events { alerts += grouper.receive(event, nowNs: submitted) }
        for key in forgotten { alerts += grouper.forget(key, nowNs: now) }
        alerts += grouper.tick(nowNs: now)
        folds.store(grouper.folded, ordering: .relaxed)
        do {
            if alerts.isEmpty { try queue.retryCommit() } else { try queue.append(alerts) }
            if queueFailing {
                queueFailing = false
                Log.info("notification_queue_write_recovered")
            }
        } catch {
            // Said once, not every 20 ms turn while the disk stays full.
            if !queueFailing { Log.error("notification_queue_write_failed", ["error": error, "note": "kept in memory; retrying"]) }
            queueFailing = true
        }
        queued.add(UInt64(alerts.count))
        guard !alerts.isEmpty || !events.isEmpty else { return }
        let firing = grouper.firing.values.sorted { ($0.startNs, $0.id) < ($1.startNs, $1.id) }
        if firingSnapshot.replace(with: firing) {
            do { try saveFiring() } catch { Log.error("notification_state_save_failed", ["error": error]) }
        }
    }

    private func saveFiring() throws {
        let firing = firingSnapshot.alerts
        try Files.writeAtomically(directory + "/firing.json", Array(try JSONEncoder().encode(firing)), sync: true)
    }

    /// Prometheus text: `gridmon_notifications_*`.
    public var metricsText: String {
        var out = "# HELP gridmon_notifications_queued_total Notifications (alert firing or resolved) queued for the receivers.\n"
        out += "# TYPE gridmon_notifications_queued_total counter\ngridmon_notifications_queued_total \(queued.value)\n"
        out += "# HELP gridmon_notifications_suppressed_total Incidents folded into an alert still firing (a flapping node), not notified.\n"
        out += "# TYPE gridmon_notifications_suppressed_total counter\n"
        out += "gridmon_notifications_suppressed_total \(folds.value)\n"
        out += "# HELP gridmon_notifications_dropped_total Notifications lost: the queue was full (a receiver kept failing) or the inbox overflowed.\n"
        out += "# TYPE gridmon_notifications_dropped_total counter\ngridmon_notifications_dropped_total \(queue.dropped + inboxDropped.value)\n"
        out += "# HELP gridmon_notifications_queue_bytes Bytes of the notification queue on disk.\n"
        out += "# TYPE gridmon_notifications_queue_bytes gauge\ngridmon_notifications_queue_bytes \(queue.bytes)\n"
        out += "# HELP gridmon_notifications_firing Alerts firing now.\n"
        out += "# TYPE gridmon_notifications_firing gauge\ngridmon_notifications_firing \(firingSnapshot.alerts.count)\n"
        let pending = queue.pending()
        let rows: [(String, String, String, (ReceiverDelivery) -> String)] = [
            ("sent_total", "counter", "Notifications a receiver accepted (2xx).", { "\($0.stats.sent.value)" }),
            ("failures_total", "counter", "Posts that got no answer or a retryable status (retried).", { "\($0.stats.failures.value)" }),
            ("rejected_total", "counter", "Notifications a receiver refused with a 4xx (passed over).", { "\($0.stats.rejected.value)" }),
            ("resends_total", "counter", "Re-sends of the firing alerts to an Alertmanager.", { "\($0.stats.resends.value)" }),
            ("pending", "gauge", "Notifications queued for a receiver and not yet accepted by it.", { "\(pending[$0.config.id] ?? 0)" }),
        ]
        for (name, type, help, value) in rows {
            out += "# HELP gridmon_notifications_\(name) \(help)\n# TYPE gridmon_notifications_\(name) \(type)\n"
            for d in deliveries { out += "gridmon_notifications_\(name){receiver=\"\(d.name)\",kind=\"\(d.config.kind.rawValue)\"} \(value(d))\n" }
        }
        out += delay.prometheusText(name: "gridmon_notification_delay_seconds",
                                    help: "From the server taking in the sample that opened an alert's incident to a receiver accepting the firing notification.")
        return out
    }
}

/// The alerts firing now, as the notifier thread last saw them (for Alertmanager re-sends and
/// /metrics). Threading: any thread; one lock.
final class FiringAlerts: Sendable {
    private let state = Mutex<[Alert]>([])

    var alerts: [Alert] { state.withLock { $0 } }

    /// Replaces the list; true when it changed.
    func replace(with alerts: [Alert]) -> Bool {
        state.withLock { current in
            defer { current = alerts }
            return current != alerts
        }
    }
}
