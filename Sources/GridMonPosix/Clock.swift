import Glibc

/// Monotonic and wall-clock time in nanoseconds, the only place GridMon reads clocks.
public enum Clock {
    /// Nanoseconds since an arbitrary start; never jumps (CLOCK_MONOTONIC). For timers.
    @inline(__always)
    public static func monotonicNanos() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// Nanoseconds since the Unix epoch (CLOCK_REALTIME). For sample timestamps.
    @inline(__always)
    public static func unixNanos() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }
}
