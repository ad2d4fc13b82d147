import GridMonFlood
import Testing

/// The flood's account of the server's verdicts against its labels.
@Suite struct DetectionTallyTests {
    private let leak = (kind: "memory-leak", start: UInt64(100))

    @Test func samplesAreCountedOnceWithTheirVerdictsAndIncidentsOnceByTheirFirstFlag() {
        var tally = DetectionTally()
        tally.record(node: "n", seq: 99, flagged: false, incident: nil)
        tally.record(node: "n", seq: 100, flagged: false, incident: leak)
        tally.record(node: "n", seq: 103, flagged: true, incident: leak)
        tally.record(node: "n", seq: 104, flagged: true, incident: leak)
        tally.record(node: "n", seq: 200, flagged: true, incident: nil)
        #expect([tally.truePositives, tally.falsePositives, tally.falseNegatives, tally.trueNegatives] == [2, 1, 1, 1])
        let byType = tally.byType["memory-leak"]
        #expect(byType?.incidents == 1 && byType?.detected == 1 && byType?.delaySum == 3)
        #expect(tally.precision == 2.0 / 3 && tally.recall == 2.0 / 3)
    }

    @Test func aVerdictFromTheSecondPartOfASplitAckMovesItsSampleToFlagged() {
        var tally = DetectionTally()
        // The first part acknowledged seqs 100...102 with no verdict for them.
        for seq in UInt64(100)...102 { tally.record(node: "n", seq: seq, flagged: false, incident: leak) }
        tally.record(node: "n", seq: 99, flagged: false, incident: nil)
        // The second part: verdicts for 101 (in the leak) and 99 (healthy).
        tally.flaggedLate(node: "n", seq: 101, incident: leak)
        tally.flaggedLate(node: "n", seq: 99, incident: nil)
        #expect([tally.truePositives, tally.falsePositives, tally.falseNegatives, tally.trueNegatives] == [1, 1, 2, 0])
        let byType = tally.byType["memory-leak"]
        #expect(byType?.incidents == 1 && byType?.detected == 1 && byType?.delaySum == 1)
        // Nothing was counted unflagged for it: nothing to move.
        tally.flaggedLate(node: "n", seq: 500, incident: nil)
        #expect(tally.falsePositives == 1)
    }
}
