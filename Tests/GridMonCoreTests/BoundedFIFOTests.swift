import GridMonCore
import Testing

@Suite struct BoundedFIFOTests {
    final class Box {
        let value: Int
        init(_ value: Int) { self.value = value }
    }

    /// 200,000 random appends and takes against an array used the slow way: the same
    /// elements come out in the same order, the bound holds at every step, and the storage's
    /// compactions (the head passing half of it, the queue running empty) lose nothing.
    @Test func behavesAsAnArrayTakenFromTheFront() {
        var rng = SplitMix64(seed: 17)
        var fifo = BoundedFIFO<Int>(capacity: 5_000)
        var model: [Int] = []
        var next = 0
        for step in 0..<200_000 {
            // Phases of mostly appending and mostly taking, so the queue fills, empties and
            // is compacted at many sizes.
            let appendBias: UInt64 = (step / 7_000) % 2 == 0 ? 70 : 30
            if rng.next() % 100 < appendBias {
                let accepted = fifo.append(next)
                #expect(accepted == (model.count < 5_000), "step \(step)")
                if accepted { model.append(next) }
                next += 1
            } else {
                let taken = fifo.popFirst()
                #expect(taken == (model.isEmpty ? nil : model.removeFirst()), "step \(step)")
            }
            if fifo.count != model.count { Issue.record("step \(step): count \(fifo.count), expected \(model.count)"); return }
        }
        while let x = fifo.popFirst() { #expect(x == model.removeFirst()) }
        #expect(model.isEmpty && fifo.isEmpty)
    }

    /// A taken element is released at once, not when the storage is next compacted.
    @Test func aTakenElementIsNotKeptAlive() {
        var fifo = BoundedFIFO<Box>(capacity: 1_000)
        weak var first: Box?
        do {
            let box = Box(1)
            first = box
            fifo.append(box)
        }
        for i in 2...500 { fifo.append(Box(i)) }
        #expect(fifo.popFirst()?.value == 1)
        #expect(first == nil)
        #expect(fifo.count == 499)
    }
}
