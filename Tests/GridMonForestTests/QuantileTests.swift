import GridMonCore
import GridMonForest
import Testing

@Suite struct QuantileTests {
    /// Selection gives exactly the interpolated quantiles a full sort gives, duplicates included.
    @Test func selectionMatchesSorting() {
        var rng = SplitMix64(seed: 11)
        let qs = [0, 0.001, 0.25, 0.5, 0.99, 0.999, 1]
        for n in [1, 2, 3, 7, 64, 255, 1000, 4096] {
            for distinct in [2, 50, 1_000_000] {
                let values = (0..<n).map { _ in Double(rng.next() % UInt64(distinct)) * 0.37 }
                let sorted = values.sorted()
                var scratch = values
                let selected = quantiles(selecting: &scratch, qs)
                #expect(selected == qs.map { quantile(sorted: sorted, $0) }, "n \(n), \(distinct) distinct")
                #expect(scratch.sorted() == sorted)  // reordered, nothing lost
            }
        }
    }
}
