import GridMonPosix
import Synchronization

/// Logs an event the first time it happens, then at most once per interval with the number
/// of times it happened since, so a limit hit 10,000 times a second costs one line per interval.
///
/// Threading: safe from any thread.
public final class RateLimitedLog: Sendable {
    private let intervalNs: UInt64
    private let state = Mutex<[String: (lastNs: UInt64, suppressed: UInt64)]>([:])

    public init(intervalNs: UInt64) {
        self.intervalNs = intervalNs
    }

    /// Records one occurrence of `event`, logging it (warning level) when it is due.
    public func note(_ event: String, _ fields: KeyValuePairs<String, Any> = [:]) {
        let now = Clock.monotonicNanos()
        let suppressed: UInt64? = state.withLock { table in
            if let entry = table[event], now - entry.lastNs < intervalNs {
                table[event] = (entry.lastNs, entry.suppressed + 1)
                return nil
            }
            let previous = table[event]?.suppressed ?? 0
            table[event] = (now, 0)
            return previous
        }
        guard let suppressed else { return }
        var line = "event=\(event)"
        for (key, value) in fields { line += " \(key)=\(value)" }
        Log.warning("limit_hit", ["what": event, "detail": line, "since_last_line": suppressed])
    }
}
