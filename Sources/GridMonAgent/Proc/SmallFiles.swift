/// /proc/loadavg and /proc/uptime. Pure. Format: proc(5).

/// The load averages and the scheduler's task counts: "0.42 0.30 0.20 2/345 6789".
public struct LoadAverage: Equatable, Sendable {
    public var load1, load5, load15: Double
    /// Kernel scheduling entities (threads) that exist now.
    public var threads: UInt64

    public init?(_ text: Substring) {
        let f = text.split(separator: " ")
        guard f.count >= 4, let l1 = Double(f[0]), let l5 = Double(f[1]), let l15 = Double(f[2]),
              let slash = f[3].firstIndex(of: "/"), let threads = UInt64(f[3][f[3].index(after: slash)...]) else { return nil }
        (load1, load5, load15, self.threads) = (l1, l5, l15, threads)
    }
}

/// Seconds since boot: the first field of /proc/uptime.
public func uptimeSeconds(uptime text: Substring) -> Double? {
    text.split(separator: " ").first.flatMap { Double($0.trimmingCharacters(in: "\n")) }
}
