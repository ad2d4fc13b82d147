import Foundation
import GridMonCore
import GridMonDetect
import Testing
@testable import GridMonNotify

private func sampleAlert() -> Alert {
    let incident = Incident(id: 42, tenant: "acme", node: "db-\"1\"", startNs: 1_700_000_000_000_000_000, endNs: nil,
                            openedNs: 1_700_000_000_000_000_000, peakScore: 1.23456, flagged: 12,
                            drivers: [IncidentDriver(metric: "memory", direction: "up", from: 40, to: 71.2, afterNs: 720_000_000_000)])
    return Alert(firing: incident, severity: "warning")
}

private func object(_ bytes: [UInt8]) throws -> Any { try JSONSerialization.jsonObject(with: Data(bytes)) }

@Suite struct AlertPayloadsTests {
    @Test func rfc3339IsUTCWithMilliseconds() {
        #expect(RFC3339.format(ns: 1_700_000_000_000_000_000) == "2023-11-14T22:13:20.000Z")
        #expect(RFC3339.format(ns: 951_782_400_123_000_000) == "2000-02-29T00:00:00.123Z")
        #expect(RFC3339.format(ns: 0) == "1970-01-01T00:00:00.000Z")
        #expect(RFC3339.format(ns: -1_000_000_000) == "1969-12-31T23:59:59.000Z")
    }

    @Test func alertmanagerGetsOneLabelSetFiringAndResolved() throws {
        let firing = sampleAlert()
        var resolved = firing.resolved(endNs: 1_700_000_600_000_000_000)
        // By the close another metric may lead; the label set stays the one that fired.
        resolved.drivers.insert(IncidentDriver(metric: "cpu", direction: "up", from: 10, to: 90, afterNs: 0), at: 0)
        let list = try #require(try object(AlertPayloads.alertmanager([firing, resolved], fleetURL: "http://gm:7071/")) as? [[String: Any]])
        #expect(list.count == 2)
        let labels = try #require(list[0]["labels"] as? [String: String])
        #expect(labels == ["alertname": "GridMonAnomaly", "node": "db-\"1\"", "tenant": "acme", "severity": "warning",
                           "metric": "memory", "incident": "42"])
        #expect(list[1]["labels"] as? [String: String] == labels)
        #expect(list[0]["startsAt"] as? String == "2023-11-14T22:13:20.000Z" && list[0]["endsAt"] == nil)
        #expect(list[1]["endsAt"] as? String == "2023-11-14T22:23:20.000Z")
        let annotations = try #require(list[0]["annotations"] as? [String: String])
        #expect(annotations["summary"] == "db-\"1\": memory ↑ 31.2 (40.0 → 71.2, +78 %) in 12m")
        #expect(annotations["fleet_view"] == "http://gm:7071/" && list[0]["generatorURL"] as? String == "http://gm:7071/")
    }

    @Test func theWebhookPayloadCarriesTheAlertAndItsIdempotencyKey() throws {
        let resolved = sampleAlert().resolved(endNs: 1_700_000_060_000_000_000, reason: "the server restarted")
        let payload = try #require(try object(AlertPayloads.webhook(resolved, fleetURL: "http://gm/")) as? [String: Any])
        #expect(payload["version"] as? Int == 1 && payload["id"] as? String == "42-resolved" && payload["event"] as? String == "resolved")
        let alert = try #require(payload["alert"] as? [String: Any])
        #expect(alert["node"] as? String == "db-\"1\"" && alert["end"] as? String == "2023-11-14T22:14:20.000Z")
        #expect(alert["peak_score"] as? Double == 1.235 && alert["flagged_samples"] as? Int == 12 && alert["reason"] as? String == "the server restarted")
        let driver = try #require((alert["drivers"] as? [[String: Any]])?.first)
        #expect(driver["metric"] as? String == "memory" && driver["to"] as? Double == 71.2 && driver["after_s"] as? Int == 720)
        let slack = try #require(try object(AlertPayloads.slack(sampleAlert(), fleetURL: "http://gm/")) as? [String: String])
        #expect(slack["text"]?.contains("*db-\"1\"*") == true && slack["text"]?.hasSuffix("<http://gm/|fleet view>") == true)
    }

    @Test func theSignatureIsHMACSHA256OfTimestampDotBody() {
        // Expected value from Python's hmac module: hmac.new(b"Jefe", b"1700000000.what do ya want for nothing?", sha256).
        let signature = WebhookSignature.sign(secret: Array("Jefe".utf8), timestamp: 1_700_000_000,
                                              body: Array("what do ya want for nothing?".utf8))
        #expect(signature == "sha256=1cdd0650c8be1cb0974b1788d458b1e781206cfef59b85faafc582d2e182c57e")
    }

    @Test func receiverFlagsTakeATenantPrefixAndRefuseWhatIsNotAURL() throws {
        let acme = try ReceiverConfig.parse("acme=https://hooks.example/x?a=b", kind: .webhook).get()
        #expect(acme.tenant == "acme" && acme.url == "https://hooks.example/x?a=b")
        let all = try ReceiverConfig.parse("https://hooks.example/x?a=b", kind: .slack).get()
        #expect(all.tenant == nil && all.url == "https://hooks.example/x?a=b" && all.safeName == "slack https://hooks.example")
        #expect(ReceiverConfig(kind: .alertmanager, url: "http://am:9093/").postURL == "http://am:9093/api/v2/alerts")
        #expect(throws: ReceiverError.self) { try ReceiverConfig.parse("ftp://x", kind: .webhook).get() }
        #expect(throws: ReceiverError.self) { try ReceiverConfig.parse("acme=http://am:9093", kind: .alertmanager).get() }
        #expect(throws: ReceiverError.self) { try ReceiverConfig.parse("=http://x", kind: .webhook).get() }
    }
}
