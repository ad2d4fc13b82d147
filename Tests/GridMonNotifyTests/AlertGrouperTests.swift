import GridMonCore
import GridMonDetect
import Testing
@testable import GridMonNotify

private let second: Int64 = 1_000_000_000

private func incident(_ id: UInt64, node: String = "web-1", start: Int64, end: Int64? = nil, peak: Double = 1.2,
                      flagged: Int = 5) -> Incident {
    Incident(id: id, tenant: "acme", node: node, startNs: start, endNs: end, openedNs: start, peakScore: peak, flagged: flagged,
             drivers: [IncidentDriver(metric: "memory", direction: "up", from: 40, to: 80, afterNs: 60 * second)])
}

@Suite struct AlertGrouperTests {
    @Test func anIncidentFiresAtOnceAndResolvesWhenItClosesWithoutAHold() {
        var grouper = AlertGrouper(holdNs: 0)
        let fired = grouper.receive(.opened(incident(7, start: 100 * second)), nowNs: 101 * second)
        #expect(fired.map(\.event) == [.firing] && fired[0].id == 7 && fired[0].endNs == nil && fired[0].severity == "warning")
        let resolved = grouper.receive(.closed(incident(7, start: 100 * second, end: 130 * second, flagged: 9)), nowNs: 131 * second)
        #expect(resolved.map(\.event) == [.resolved] && resolved[0].endNs == 130 * second && resolved[0].flagged == 9)
        #expect(grouper.firing.isEmpty)
    }

    @Test func aFlappingNodeGetsOneAlertThatResolvesOnlyAfterTheHold() {
        var grouper = AlertGrouper(holdNs: 300 * second)
        #expect(grouper.receive(.opened(incident(1, start: 0)), nowNs: 0).count == 1)
        // Closes and reopens three times within the hold: nothing more is sent.
        var sent: [Alert] = []
        for round: Int64 in 0..<3 {
            let t = (round + 1) * 100 * second
            sent += grouper.receive(.closed(incident(1 + UInt64(round), start: t - 50 * second, end: t, flagged: 4)), nowNs: t)
            sent += grouper.receive(.opened(incident(2 + UInt64(round), start: t + 10 * second, peak: 2.5, flagged: 3)), nowNs: t + 10 * second)
            sent += grouper.tick(nowNs: t + 20 * second)
        }
        #expect(sent.isEmpty && grouper.folded == 3)
        #expect(grouper.firing.values.first?.endNs == nil)
        sent += grouper.receive(.closed(incident(4, start: 310 * second, end: 320 * second, flagged: 4)), nowNs: 320 * second)
        #expect(grouper.tick(nowNs: 619 * second).isEmpty && grouper.nextDeadlineNs == 620 * second)
        let resolved = grouper.tick(nowNs: 620 * second)
        #expect(resolved.count == 1)
        let alert = resolved[0]
        // The alert keeps its first incident's id and label set; it sums the flagged samples.
        #expect(alert.event == .resolved && alert.id == 1 && alert.incidents == 4 && alert.flagged == 16)
        #expect(alert.severity == "warning" && alert.peakScore == 2.5 && alert.endNs == 320 * second)
    }

    @Test func aHighPeakIsCriticalAndAForgottenNodeResolvesWithTheReason() {
        var grouper = AlertGrouper(holdNs: 60 * second)
        let fired = grouper.receive(.opened(incident(3, start: 0, peak: 2.0)), nowNs: 0)
        #expect(fired.first?.severity == "critical")
        #expect(grouper.receive(.closed(incident(99, node: "other", start: 0, end: 1)), nowNs: 1).isEmpty)  // never fired here
        let gone = grouper.forget(NodeKey(tenant: "acme", node: "web-1"), nowNs: 5 * second)
        #expect(gone.count == 1 && gone[0].reason == "the node went silent and was forgotten" && gone[0].endNs == 5 * second)
        #expect(grouper.firing.isEmpty && grouper.nextDeadlineNs == nil)
    }
}
