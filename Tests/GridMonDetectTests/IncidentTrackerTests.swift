import GridMonDetect
import Testing

@Suite struct IncidentTrackerTests {
    func run(_ flags: String, rules: IncidentRules = IncidentRules()) -> [IncidentTracker.Transition] {
        var tracker = IncidentTracker(rules: rules)
        return flags.map { tracker.next(flagged: $0 == "x") }
    }

    @Test func scatteredFlagsNeverOpen() {
        // 3 of every 6 flagged, never 4: the default rule stays closed.
        let transitions = run(String(repeating: "x.x.x.", count: 50))
        #expect(transitions.allSatisfy { $0 == .none })
    }

    @Test func fourOfSixOpensAtTheFourthAndPointsAtTheFirst() {
        let transitions = run("..x.xx.x")
        #expect(transitions[7] == .opened(firstFlaggedBack: 5))
        #expect(transitions[..<7].allSatisfy { $0 == .none })
    }

    @Test func closesAfterThirtyQuietInARowAndOnlyOnce() {
        let trouble = "xxxx" + String(repeating: ".", count: 29) + "x" + String(repeating: ".", count: 30) + String(repeating: ".", count: 10)
        let transitions = run(trouble)
        #expect(transitions[3] == .opened(firstFlaggedBack: 3))
        // The flag at 33 restarts the quiet count: the close comes 30 samples after it.
        #expect(transitions[63] == .closed)
        #expect(transitions.filter { $0 != .none }.count == 2)
    }

    @Test func rulesAreValidated() {
        var rules = IncidentRules()
        #expect(rules.problem == nil)
        rules.openAfter = 7
        #expect(rules.problem != nil)
        rules = IncidentRules()
        rules.window = 65
        #expect(rules.problem != nil)
    }
}

@Suite struct IncidentDriverTests {
    /// Drivers are built from a peer's gauge values: any finite Double must format, never trap.
    @Test func extremeValuesFormatWithoutTrapping() {
        let cases: [(Double, Double)] = [(1, 1e300), (-1e308, 1e308), (1e-300, 5), (0, .greatestFiniteMagnitude), (48, 79.24)]
        for (from, to) in cases {
            let d = IncidentDriver(metric: "m", direction: to >= from ? "up" : "down", from: from, to: to, afterNs: 720_000_000_000)
            #expect(d.summary.hasPrefix("m "))
        }
        let memory = IncidentDriver(metric: "memory", direction: "up", from: 48, to: 79.2, afterNs: 720_000_000_000)
        #expect(memory.summary == "memory ↑ 31.2 (48.0 → 79.2, +65 %) in 12m")
    }
}
