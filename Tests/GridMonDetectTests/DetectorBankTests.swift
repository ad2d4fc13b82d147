import GridMonCore
import GridMonDetect
import GridMonWire
import Glibc
import Testing

@Suite struct DetectorBankTests {
    /// A fleet that started together: every node's first fit falls due in the same turn, far
    /// more than the 64 histories the trainer's queue used to hold (the rest were skipped and
    /// retried 30 samples later, so a 10,000-node fleet waited many minutes for its
    /// detectors; issue #17). Every node must be judged without sending another sample.
    @Test func everyNodeOfAFleetDueAtOnceGetsItsDetectorWithoutMoreSamples() {
        var options = LiveDetectorOptions()
        options.warmup = 40
        options.detector.trees = 2
        let nodes = 200
        let bank = DetectorBank(options: options, prior: nil, maxNodes: nodes, incidents: IncidentBook(), firstID: 1)
        bank.start()
        defer { bank.stop() }
        let keys = (0..<nodes).map { NodeKey(tenant: "acme", node: "n\($0)") }
        var judgement = Judgement()
        for seq in 1...options.warmup {
            for (i, key) in keys.enumerated() { _ = bank.judge([NodeDetectorTests.sample(seq * nodes + i)], key: key, into: &judgement) }
        }
        // The fits run on the trainer thread: wait for them (bounded), sending nothing.
        var waitedMs = 0
        while bank.fits.load(ordering: .relaxed) < UInt64(nodes) && waitedMs < 60_000 {
            usleep(10_000)
            waitedMs += 10
        }
        #expect(bank.fits.load(ordering: .relaxed) == UInt64(nodes))
        #expect(bank.skippedFits.load(ordering: .relaxed) == 0)
        // One more sample each: every node is judged by a detector of its own now.
        for (i, key) in keys.enumerated() {
            _ = bank.judge([NodeDetectorTests.sample((options.warmup + 1) * nodes + i)], key: key, into: &judgement)
            #expect(judgement.state == .active, "\(key)")
        }
    }
}
