import Glibc

/// CPU time of the calling thread in nanoseconds: steadier than wall time on a shared machine.
func threadCPUNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// Runs `body` (which performs `opsPerCall` operations) repeatedly for about `millis` of CPU
/// time per round, `rounds` times, and returns the median CPU nanoseconds per operation.
func measure(rounds: Int, millis: Int, opsPerCall: Int = 1, _ body: () -> Void) -> (nsPerOp: Double, ops: Int) {
    // Calibrate: how many calls fill one round.
    var calls = 1
    while true {
        let start = threadCPUNanos()
        for _ in 0..<calls { body() }
        let elapsed = threadCPUNanos() - start
        if elapsed > 20_000_000 {
            calls = max(1, Int(Double(calls) * Double(millis) * 1e6 / Double(elapsed)))
            break
        }
        calls *= 4
    }
    var perOp: [Double] = []
    for _ in 0..<rounds {
        let start = threadCPUNanos()
        for _ in 0..<calls { body() }
        perOp.append(Double(threadCPUNanos() - start) / Double(calls * opsPerCall))
    }
    perOp.sort()
    return (perOp[perOp.count / 2], calls * opsPerCall * rounds)
}

/// Keeps the optimizer from deleting work whose result is otherwise unused.
@inline(never)
func blackHole<T>(_ value: T) {
    withExtendedLifetime(value) {}
}
