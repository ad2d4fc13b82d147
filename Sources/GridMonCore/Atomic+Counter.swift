import Synchronization

/// Counters: every self-metric counter is an `Atomic<UInt64>` written with relaxed ordering
/// (a count needs no ordering with other memory) and read by the metrics exporter on another
/// thread.
extension Atomic where Value == UInt64 {
    /// Adds `n` with relaxed ordering.
    @inline(__always)
    public func add(_ n: UInt64 = 1) { _ = wrappingAdd(n, ordering: .relaxed) }
    /// The current count (relaxed).
    @inline(__always)
    public var value: UInt64 { load(ordering: .relaxed) }
}
