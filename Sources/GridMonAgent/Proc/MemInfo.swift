/// /proc/meminfo and /proc/vmstat: memory, swap and paging. Pure. Format: proc(5).

/// The memory figures the agent reports, in bytes.
public struct MemInfo: Equatable, Sendable {
    public var total: UInt64
    public var available: UInt64
    public var free: UInt64
    public var buffers: UInt64
    /// Page cache plus reclaimable slab, as free(1) and psutil count "cached".
    public var cached: UInt64
    public var swapTotal: UInt64
    public var swapFree: UInt64

    /// Parses the `Key:  value kB` lines. MemAvailable (Linux 3.14+) is required: without it
    /// "used" would be a guess.
    public init?(_ text: Substring) {
        var values: [Substring: UInt64] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            guard parts.count >= 2, parts[0].last == ":", let value = UInt64(parts[1]) else { continue }
            // Every line but HugePages_* counts is in kB.
            let bytes = parts.count >= 3 && parts[2] == "kB" ? value.multipliedReportingOverflow(by: 1024).partialValue : value
            values[parts[0].dropLast()] = bytes
        }
        guard let total = values["MemTotal"], let available = values["MemAvailable"], total > 0 else { return nil }
        self.total = total
        self.available = min(available, total)
        free = values["MemFree"] ?? 0
        buffers = values["Buffers"] ?? 0
        cached = (values["Cached"] ?? 0) &+ (values["SReclaimable"] ?? 0)
        swapTotal = values["SwapTotal"] ?? 0
        swapFree = min(values["SwapFree"] ?? 0, swapTotal)
    }

    /// Memory in use: total − available.
    public var used: UInt64 { total - available }
    public var usedPercent: Double { 100 * Double(used) / Double(total) }
    public var swapUsed: UInt64 { swapTotal - swapFree }
    /// 0 when there is no swap.
    public var swapUsedPercent: Double { swapTotal == 0 ? 0 : 100 * Double(swapUsed) / Double(swapTotal) }
}

/// Pages swapped in and out since boot (`pswpin`, `pswpout` of /proc/vmstat).
public func swapPages(vmstat text: Substring) -> (pagesIn: UInt64, pagesOut: UInt64)? {
    var pagesIn: UInt64?
    var pagesOut: UInt64?
    for line in text.split(separator: "\n") {
        if line.hasPrefix("pswpin ") { pagesIn = UInt64(line.dropFirst(7)) }
        if line.hasPrefix("pswpout ") { pagesOut = UInt64(line.dropFirst(8)) }
    }
    guard let pagesIn, let pagesOut else { return nil }
    return (pagesIn, pagesOut)
}
