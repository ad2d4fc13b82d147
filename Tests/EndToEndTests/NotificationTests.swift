import Foundation
import Glibc
import GridMonWire
import Testing

/// Incidents reach people (issue #14) through the real server: a real Alertmanager, a webhook
/// receiver the test runs, a receiver that is down for a while, and a server SIGKILLed between
/// an alert's firing and its resolve.
@Suite(.serialized, .enabled(if: AlertmanagerProcess.available || ProcessInfo.processInfo.environment["GRIDMON_REQUIRE_INTEROP"] == "1"))
struct NotificationTests {
    /// Learns web-1 (700 healthy samples), then 30 troubled ones: an incident opens.
    private func openIncident(_ server: ServerProcess) throws -> TestClient {
        let client = try TestClient(server.address)
        _ = try client.hello(node: "web-1", stream: 1)
        _ = try IncidentTests.send(client, (1...400).map(IncidentTests.healthy))
        #expect(eventually(30) { ((try? IncidentTests.json(server, "/api/v1/nodes") as? [[String: Any]])??.first?["detector"] as? String) == "active" })
        _ = try IncidentTests.send(client, (401...700).map(IncidentTests.healthy))
        let trouble = (701...730).map(IncidentTests.troubled)
        _ = try IncidentTests.send(client, trouble)
        #expect(server.logContains("event=incident_opened"))
        return client
    }

    /// Healthy samples after the trouble: the incident closes (after 20 quiet ones).
    private func closeIncident(_ client: TestClient) throws {
        _ = try IncidentTests.send(client, (731...800).map(IncidentTests.healthy))
    }

    private func secretFile() throws -> String {
        let path = tempPath("webhook-secret")
        try writeSecret("s3cret-for-tests\n", to: path)
        return path
    }

    @Test func anIncidentReachesAlertmanagerAndASignedWebhookAndResolvesInBoth() throws {
        let alertmanager = try AlertmanagerProcess()
        let receiver = try WebhookReceiver(secret: "s3cret-for-tests")
        let server = try ServerProcess(["--insecure-no-auth", "--incident-close-after", "20", "--notify-resolve-hold", "1s",
                                        "--alertmanager-url", "http://127.0.0.1:\(alertmanager.port)",
                                        "--webhook-url", "http://127.0.0.1:\(receiver.port)/hook",
                                        "--webhook-secret-file", try secretFile(), "--fleet-url", "http://fleet.example/"])
        let client = try openIncident(server)
        // Alertmanager holds the alert, with its labels and the metrics in the summary.
        var alert: [String: Any]?
        #expect(eventually(15) { alert = (try? alertmanager.alerts())?.first; return alert != nil })
        let labels = try #require(alert?["labels"] as? [String: String])
        #expect(labels["alertname"] == "GridMonAnomaly" && labels["node"] == "web-1" && labels["tenant"] == "default")
        #expect(["warning", "critical"].contains(labels["severity"] ?? "") && labels["metric"] != nil && labels["incident"] != nil)
        let annotations = try #require(alert?["annotations"] as? [String: String])
        #expect(annotations["summary"]?.hasPrefix("web-1: ") == true && annotations["fleet_view"] == "http://fleet.example/")
        #expect((alert?["status"] as? [String: Any])?["state"] as? String == "active")
        #expect(eventually(15) { receiver.ids.count == 1 })

        try closeIncident(client)
        // After the 1 s hold the alert resolves: gone from Alertmanager's active list, and the
        // webhook has firing then resolved, both signed, one id.
        #expect(eventually(20) { ((try? alertmanager.alerts()) ?? [["x": 1]]).isEmpty }, "still listed: \(String(describing: try? alertmanager.alerts()))")
        #expect(eventually(15) { receiver.ids.count == 2 })
        let id = try #require(labels["incident"])
        #expect(receiver.ids == ["\(id)-firing", "\(id)-resolved"])
        let allSigned = receiver.posts.allSatisfy { $0.valid }
        #expect(allSigned, "a payload's signature did not check out")
        let resolved = try #require(receiver.posts.last?.payload["alert"] as? [String: Any])
        #expect(resolved["node"] as? String == "web-1")
        #expect(resolved["end"] is String)
        #expect((resolved["drivers"] as? [Any])?.isEmpty == false)
        let metrics = try httpGet(try #require(server.adminAddress), "/metrics").body
        #expect(metric(metrics, "gridmon_notifications_sent_total{receiver=\"alertmanager-1\",kind=\"alertmanager\"}") == 2)
        #expect(metric(metrics, "gridmon_notifications_sent_total{receiver=\"webhook-1\",kind=\"webhook\"}") == 2)
        #expect(metric(metrics, "gridmon_notifications_firing") == 0)
        #expect((metric(metrics, "gridmon_notification_delay_seconds_count") ?? 0) >= 2)
    }

    @Test func aReceiverThatIsDownForAWhileGetsEverythingOnceAndInOrder() throws {
        let reserved = try ReservedPort()
        let port = reserved.port  // nobody listens yet
        let server = try ServerProcess(["--insecure-no-auth", "--incident-close-after", "20", "--notify-resolve-hold", "0s",
                                        "--webhook-url", "http://127.0.0.1:\(port)/hook"])
        let client = try openIncident(server)
        try closeIncident(client)
        let admin = try #require(server.adminAddress)
        #expect(eventually(15) { (metric((try? httpGet(admin, "/metrics").body) ?? "", "gridmon_notifications_failures_total{receiver=\"webhook-1\",kind=\"webhook\"}") ?? 0) >= 2 })
        #expect(metric(try httpGet(admin, "/metrics").body, "gridmon_notifications_pending{receiver=\"webhook-1\",kind=\"webhook\"}") == 2)
        #expect(try httpGet(admin, "/readyz").status == 200)  // a down receiver is not ingest
        reserved.release()
        let receiver = try WebhookReceiver(port: port)
        #expect(eventually(70) { receiver.ids.count >= 2 })
        usleep(1_000_000)
        let ids = receiver.ids
        #expect(ids.count == 2 && ids.first?.hasSuffix("-firing") == true && ids.last?.hasSuffix("-resolved") == true)
        #expect(ids.first?.dropLast("-firing".count) == ids.last?.dropLast("-resolved".count))
        let noneSigned = receiver.posts.allSatisfy { !$0.valid }
        #expect(noneSigned)  // no secret configured: unsigned
    }

    @Test func aServerKilledBetweenFiringAndResolveSendsTheResolveOnceWhenItRestarts() throws {
        let receiver = try WebhookReceiver()
        let dataDir = tempPath("notify-kill")
        defer { try? FileManager.default.removeItem(atPath: dataDir) }
        let args = ["--insecure-no-auth", "--webhook-url", "http://127.0.0.1:\(receiver.port)/hook"]
        do {
            let server = try ServerProcess(args, dataDir: dataDir)
            _ = try openIncident(server)
            #expect(eventually(15) { receiver.ids.count == 1 })
            // Killed once the server has recorded the delivery: killed between the receiver's
            // answer and that record, it sends the firing again after the restart (at least
            // once, the same id), which is not what this test is about.
            let admin = try #require(server.adminAddress)
            #expect(eventually(15) {
                metric((try? httpGet(admin, "/metrics").body) ?? "", "gridmon_notifications_pending{receiver=\"webhook-1\",kind=\"webhook\"}") == 0
            })
            #expect(server.stop(signal: SIGKILL) == SIGKILL)
        }
        let server = try ServerProcess(args, dataDir: dataDir)
        #expect(eventually(15) { receiver.ids.count == 2 })
        usleep(1_500_000)
        let ids = receiver.ids
        #expect(ids.count == 2 && ids[1].hasSuffix("-resolved") && ids[0].dropLast("-firing".count) == ids[1].dropLast("-resolved".count))
        let alert = try #require(receiver.posts.last?.payload["alert"] as? [String: Any])
        #expect((alert["reason"] as? String)?.contains("restarted") == true)
        #expect(server.logContains("event=notifications_resolved_at_start"))
        // And a clean restart after that resolves nothing more.
        #expect(server.stop() == 0)
        _ = try ServerProcess(args, dataDir: dataDir)
        usleep(1_500_000)
        #expect(receiver.ids.count == 2)
    }

    @Test func theFleetSimulatorsIncidentsReachAlertmanagerAndTheClosedOnesResolve() throws {
        let alertmanager = try AlertmanagerProcess()
        let server = try ServerProcess(["--insecure-no-auth", "--notify-resolve-hold", "0s",
                                        "--alertmanager-url", "http://127.0.0.1:\(alertmanager.port)"])
        // Two simulated nodes, 2,400 samples each at 300/s (paced, so each node's detector is fit
        // in the background after its 300-sample warm-up): a healthy first window, then an incident
        // injected in every 600-sample window (--incident-rate 1).
        let run = try runBinary("gridmon-flood", ["--target", "\(server.address)", "--mode", "fleet", "--connections", "1",
                                                  "--streams", "2", "--samples", "4800", "--batch", "10", "--rate", "300", "--incident-rate", "1",
                                                  "--seed", "3", "--quiet"], timeout: 120)
        #expect(run.status == 0, "\(run.stderr)")
        let incidents = try #require(try IncidentTests.json(server, "/api/v1/incidents") as? [String: Any])
        let open = Set(((incidents["open"] as? [[String: Any]]) ?? []).compactMap { ($0["id"] as? Int).map(String.init) })
        let closed = Set(((incidents["recent"] as? [[String: Any]]) ?? []).compactMap { ($0["id"] as? Int).map(String.init) })
        #expect(!closed.isEmpty, "no incident closed during the run")
        // Alertmanager ends up with exactly the incidents still open: the others resolved.
        var listed = Set<String>()
        #expect(eventually(20) {
            listed = Set(((try? alertmanager.alerts()) ?? []).compactMap { ($0["labels"] as? [String: String])?["incident"] })
            return listed == open
        }, "Alertmanager lists \(listed), open: \(open)")
        #expect(listed.isDisjoint(with: closed))
        let sent = metric(try httpGet(try #require(server.adminAddress), "/metrics").body,
                          "gridmon_notifications_sent_total{receiver=\"alertmanager-1\",kind=\"alertmanager\"}") ?? 0
        #expect(Int(sent) == open.count + 2 * closed.count, "\(sent) notifications for \(open.count) open and \(closed.count) closed incidents")
    }

    @Test func aTenantsWebhookGetsItsTenantsAlertsAndNoOtherTenants() throws {
        let mine = try WebhookReceiver()
        let theirs = try WebhookReceiver()
        let server = try ServerProcess(["--insecure-no-auth", "--notify-resolve-hold", "0s",  // agents without a token: tenant "default"
                                        "--webhook-url", "default=http://127.0.0.1:\(mine.port)/hook",
                                        "--webhook-url", "other=http://127.0.0.1:\(theirs.port)/hook"])
        _ = try openIncident(server)
        #expect(eventually(15) { mine.ids.count == 1 })
        let admin = try #require(server.adminAddress)
        // The other tenant's receiver passed the notification over: nothing pending, nothing sent.
        #expect(eventually(5) { metric((try? httpGet(admin, "/metrics").body) ?? "", "gridmon_notifications_pending{receiver=\"webhook-2\",kind=\"webhook\"}") == 0 })
        usleep(500_000)
        #expect(theirs.posts.isEmpty)
        #expect((mine.posts.first?.payload["alert"] as? [String: Any])?["tenant"] as? String == "default")
    }

    @Test func badNotificationFlagsAreRefusedNamingTheFlag() throws {
        let result = try runBinary("gridmon-stream-server", ["--insecure-no-auth", "--webhook-url", "ftp://x", "--data-dir", tempPath("nf")], timeout: 20)
        #expect(result.status == 64)
        #expect(result.stderr.contains("--webhook-url: ftp://x: the URL must start with http:// or https://"), "\(result.stderr)")
        let variable = try runBinary("gridmon-stream-server", ["--insecure-no-auth", "--data-dir", tempPath("nf")],
                                     environment: ["GRIDMON_WEBHOOK_URLS": "https://ok.example/a,ftp://y"], timeout: 20)
        #expect(variable.status == 64 && variable.stderr.contains("GRIDMON_WEBHOOK_URLS: ftp://y: the URL must start with http"), "\(variable.stderr)")
        let none = try runBinary("gridmon-stream-server", ["--insecure-no-auth", "--store", "none", "--slack-url", "http://127.0.0.1:9/x",
                                                          "--data-dir", tempPath("nf")], timeout: 20)
        #expect(none.status == 64 && none.stderr.contains("notifications need --store outbox"))
        // The options without a flag are read from their variables (and refused by name).
        let hold = try runBinary("gridmon-stream-server", ["--insecure-no-auth", "--webhook-url", "http://127.0.0.1:9/x", "--data-dir", tempPath("nf")],
                                 environment: ["GRIDMON_NOTIFY_RESOLVE_HOLD": "soon"], timeout: 20)
        #expect(hold.status == 64 && hold.stderr.contains("GRIDMON_NOTIFY_RESOLVE_HOLD") && hold.stderr.contains("got 'soon'"), "\(hold.stderr)")
        let flagWins = try runBinary("gridmon-stream-server", ["--insecure-no-auth", "--webhook-url", "http://127.0.0.1:9/x", "--data-dir", tempPath("nf"),
                                                              "--notify-queue-bytes", "1KiB"],
                                     environment: ["GRIDMON_NOTIFY_QUEUE_BYTES": "64MiB"], timeout: 20)
        #expect(flagWins.status == 64 && flagWins.stderr.contains("got '1KiB'"), "\(flagWins.stderr)")
    }
}
