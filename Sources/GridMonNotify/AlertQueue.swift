import Foundation
import GridMonOutbox
import GridMonPosix
import Synchronization

/// The durable notification queue: alerts in an outbox of their own (`<data-dir>/notifications`,
/// CRC-checked records, fsync'ed before any receiver sees them, replayed on start), one
/// delivery cursor per receiver (`cursors`, fsync'ed after each delivery, so a crash resends
/// at most the notification in flight), and what is not yet delivered everywhere mirrored in
/// memory for the receivers to read.
///
/// Bounded by `maxBytes` on disk (the memory mirror holds the same records): past it the oldest
/// segment goes, and the notifications in it that some receiver had not had are counted as
/// dropped (issue #14, item 3). Delivered segments are deleted.
///
/// Threading: `append` from the notifier's thread; `after`, `delivered`, `cursor` from the
/// receivers' threads; state behind one lock (the outbox's own calls are the notifier's, and
/// segment deletion is safe from any thread).
final class AlertQueue: @unchecked Sendable {  // mutable state behind `state`; outbox commits on the notifier thread only
    static let segmentBytes = 1 << 20
    let directory: String
    let maxBytes: Int
    private let outbox: Outbox

    private struct State {
        /// Records not yet delivered to every receiver, in order.
        var records: [(number: UInt64, alert: Alert)] = []
        var cursors: [String: UInt64] = [:]
        var dropped: UInt64 = 0
        var savedCursors = ""
    }
    private let state = Mutex(State())
    /// Serialises writes of `cursors` (receivers deliver on threads of their own).
    private let saving = Mutex(())

    /// Opens (or creates) the queue; `receivers` are the cursor ids in use (a receiver not seen
    /// before starts after what is already queued: it gets what happens from now on).
    init(directory: String, receivers: [String], maxBytes: Int) throws {
        self.directory = directory
        self.maxBytes = max(maxBytes, 2 * Self.segmentBytes)
        var replayed: [(UInt64, Alert)] = []
        var undecodable = 0
        (outbox, _) = try Outbox.open(directory: directory, segmentBytes: Self.segmentBytes) { number, payload in
            guard let alert = try? JSONDecoder().decode(Alert.self, from: Data(payload)) else { undecodable += 1; return }
            replayed.append((number, alert))
        }
        if undecodable > 0 { Log.warning("notification_queue_undecodable", ["count": undecodable, "directory": directory]) }
        let saved = Self.loadCursors(directory)
        let last = outbox.durableRecord
        state.withLock { s in
            s.records = replayed
            for id in receivers { s.cursors[id] = saved[id] ?? last }
        }
        try saveCursors()
        prune()
    }

    /// Queues `alerts` durably (written and fsync'ed); they are then visible to the receivers.
    /// On error (a full disk) they stay buffered and the next append commits them too.
    func append(_ alerts: [Alert]) throws {
        guard !alerts.isEmpty else { return }
        let encoder = JSONEncoder()
        var numbered: [(UInt64, Alert)] = []
        for alert in alerts {
            numbered.append((outbox.append(Array(try encoder.encode(alert))), alert))
        }
        state.withLock { $0.records += numbered }
        try outbox.commit()
        enforceLimit()
    }

    /// Commits alerts a failed append left buffered (called by the notifier's loop).
    func retryCommit() throws { try outbox.commit() }

    /// Durable records after `cursor` (at most `limit`).
    func after(_ cursor: UInt64, limit: Int) -> [(number: UInt64, alert: Alert)] {
        let durable = outbox.durableRecord
        return state.withLock { s in
            // Records are in increasing order: binary search for the first after the cursor
            // (a failing receiver can leave tens of thousands queued).
            var low = 0, high = s.records.count
            while low < high {
                let middle = (low + high) / 2
                if s.records[middle].number > cursor { high = middle } else { low = middle + 1 }
            }
            return Array(s.records[low...].prefix { $0.number <= durable }.prefix(limit))
        }
    }

    func cursor(_ id: String) -> UInt64 { state.withLock { $0.cursors[id] ?? 0 } }

    /// Receiver `id` has everything through `record`; saved before returning, and before
    /// `pending` counts it delivered (so a pending count of 0 means a restart resends nothing,
    /// unless the save failed, which is logged).
    func delivered(_ id: String, through record: UInt64) {
        do { try saveCursors(advancing: (id, record)) } catch {
            Log.error("notification_cursor_save_failed", ["error": error, "note": "may resend after a restart"])
            state.withLock { $0.cursors[id] = max($0.cursors[id] ?? 0, record) }
        }
        prune()
    }

    /// Notifications some receiver has not had, per receiver id.
    func pending() -> [String: Int] {
        state.withLock { s in s.cursors.mapValues { cursor in s.records.count { $0.number > cursor } } }
    }

    var dropped: UInt64 { state.withLock { $0.dropped } }
    var bytes: Int { outbox.totalBytes }

    /// Forgets in memory, and deletes on disk, what every receiver has.
    private func prune() {
        let done = state.withLock { s -> UInt64 in
            let done = s.cursors.values.min() ?? outbox.durableRecord
            s.records.removeAll { $0.number <= done }
            return done
        }
        _ = try? outbox.deleteSegments(upTo: done)
    }

    /// Past `maxBytes`, the oldest segments go; receivers behind them skip what was dropped.
    private func enforceLimit() {
        guard outbox.totalBytes > maxBytes,
              let freed = try? outbox.deleteOldest(bytesOver: outbox.totalBytes - maxBytes), freed > 0 else { return }
        let firstKept = outbox.segmentPaths.first.flatMap { UInt64(($0.split(separator: "/").last ?? "").prefix(20)) } ?? 0
        let lost = state.withLock { s -> Int in
            let before = s.records.count
            let slowest = s.cursors.values.min() ?? 0
            s.records.removeAll { $0.number < firstKept }
            for (id, cursor) in s.cursors where cursor + 1 < firstKept { s.cursors[id] = firstKept - 1 }
            let lost = slowest + 1 < firstKept ? before - s.records.count : 0
            s.dropped += UInt64(lost)
            return lost
        }
        if lost > 0 {
            Log.error("notifications_dropped", ["count": lost, "limit_bytes": maxBytes, "note": "queue full: a receiver has been failing"])
        }
        try? saveCursors()
    }

    /// `cursors`: `<record> <receiver id>` lines. `advancing` moves one receiver's cursor,
    /// in memory only once the file holding it is written.
    private func saveCursors(advancing: (id: String, record: UInt64)? = nil) throws {
        try saving.withLock { _ in
            let text = state.withLock { s -> String? in
                var cursors = s.cursors
                if let (id, record) = advancing { cursors[id] = max(cursors[id] ?? 0, record) }
                let text = cursors.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)\n" }.joined()
                return text == s.savedCursors ? nil : text
            }
            if let text { try Files.writeAtomically(directory + "/cursors", Array(text.utf8), sync: true) }
            state.withLock { s in
                if let (id, record) = advancing { s.cursors[id] = max(s.cursors[id] ?? 0, record) }
                if let text { s.savedCursors = text }
            }
        }
    }

    private static func loadCursors(_ directory: String) -> [String: UInt64] {
        guard let text = try? Files.readText(directory + "/cursors", maxBytes: 1 << 20) else { return [:] }
        var out: [String: UInt64] = [:]
        for line in text.split(separator: "\n") {
            guard let space = line.firstIndex(of: " "), let record = UInt64(line[..<space]) else { continue }
            out[String(line[line.index(after: space)...])] = record
        }
        return out
    }
}
