import GridMonCore
import GridMonOutbox
import GridMonShipper
import GridMonPosix
import GridMonDetect
import GridMonStore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The embedded default store: accepted samples go into the durable outbox, packed (lines are made when shipped),
/// made durable by an adaptive group commit; agents are acked only after that.
///
/// Group commit (issue #17, item 1): the committer fsyncs as soon as there is something to
/// commit and the previous fsync has finished, so records appended during one fsync ride
/// together on the next — an ack waits about one to two fdatasync times, not a fixed
/// interval (it waited up to 100 ms before). `commitDelayNs` (PostgreSQL's commit_delay)
/// optionally waits that long before each fsync to gather more records per fsync.
///
/// Until the InfluxDB writer drains the outbox, the outbox is the store: it is kept within
/// `retentionBytes` by deleting its oldest segments (counted). On start the outbox is
/// replayed so each node's durable seq survives restarts and crashes.
///
/// Threading: `append` from every reactor thread; one committer thread of its own.
public final class OutboxSink: SampleSink, @unchecked Sendable {  // mutable state behind locks/atomics
    public let outbox: Outbox
    public let recovery: OutboxRecovery
    /// Held while the server runs: one data directory, one server.
    private let lock: DataDirLock
    /// Per node found on disk at start: its durable seq.
    public private(set) var restoredNodes: [NodeKey: UInt64] = [:]
    /// Ships the outbox to InfluxDB when configured; then the outbox is a queue, not the store:
    /// delivered segments are deleted, retention is off, and past `retentionBytes` of
    /// undelivered data the server stops reading agents (they buffer) instead of dropping —
    /// unless `dropOldestWhenFull`.
    public var shipper: OutboxShipper?
    /// With a shipper and a full outbox: delete the oldest undelivered segments (counted and
    /// logged) instead of applying backpressure. Set before `start`.
    public var dropOldestWhenFull = false
    /// Bytes of undelivered segments deleted by `dropOldestWhenFull`.
    public let droppedUndeliveredBytes = Atomic<UInt64>(0)
    /// Called on the committer thread after each commit, with the new durable ticket.
    private var onDurable: (@Sendable (UInt64) -> Void)?

    private let commitDelayNs: UInt64
    /// Posted by an append that finds the committer idle; the committer waits on it (at most
    /// `idleWakeNs`, for retention) when nothing is pending. A POSIX semaphore: posting with no
    /// waiter costs no syscall.
    private let wake = UnsafeMutablePointer<sem_t>.allocate(capacity: 1)
    /// Set by the committer before it waits; the first append after takes it and posts.
    private let committerIdle = Atomic<Bool>(false)
    /// The last ticket handed out (records appended, committed or not).
    private let lastTicket = Atomic<UInt64>(0)
    /// When retention by age last looked (committer thread only).
    private var lastAgeCheckNs: UInt64 = 0
    /// An idle committer still wakes this often to apply retention by age.
    private static let idleWakeNs: UInt64 = 1_000_000_000
    private let retentionBytes: Int
    private let retentionSeconds: Int
    private let waiting = Mutex<[(ticket: UInt64, record: NodeRecord, seq: UInt64)]>([])
    private let uncommitted = Atomic<Int>(0)
    private let durable = Atomic<UInt64>(0)
    private let ready = Atomic<Bool>(true)
    private let stopping = Atomic<Bool>(false)
    private let drops = Mutex(LineProtocolDrops())
    public let commits = Atomic<UInt64>(0)
    /// Commit (write + fdatasync) durations.
    private let commitLatency = LatencyHistogram()
    public let commitFailures = Atomic<UInt64>(0)
    public let retentionDeletedBytes = Atomic<UInt64>(0)
    private var thread: PosixThread?

    /// Opens (and recovers) the outbox in `directory`.
    /// - Parameter retentionSeconds: segments last written longer ago are deleted (0 = keep).
    /// - Parameter commitDelayNs: wait this long before each fsync to gather more records (0:
    ///   fsync as soon as the previous one finished).
    public init(directory: String, commitDelayNs: UInt64 = 0, retentionBytes: Int = 1 << 30,
                retentionSeconds: Int = 0, segmentBytes: Int = 64 << 20) throws {
        lock = try DataDirLock(directory: directory)
        self.commitDelayNs = commitDelayNs
        sem_init(wake, 0, 0)
        self.retentionBytes = retentionBytes
        self.retentionSeconds = retentionSeconds
        var nodes: [NodeKey: UInt64] = [:]
        var undecodable = 0
        (outbox, recovery) = try Outbox.open(directory: directory, segmentBytes: segmentBytes) { _, payload in
            guard let batch = try? OutboxBatch.header(decoding: payload) else { undecodable += 1; return }
            let key = NodeKey(tenant: batch.tenant, node: batch.node)
            nodes[key] = max(nodes[key] ?? 0, batch.highestSeq)
        }
        restoredNodes = nodes
        durable.store(outbox.durableRecord, ordering: .relaxed)
        lastTicket.store(outbox.durableRecord, ordering: .relaxed)
        if undecodable > 0 { Log.warning("outbox_undecodable_records", ["count": undecodable]) }
    }

    public var notReadyReason: String? {
        if !ready.load(ordering: .relaxed) { return "outbox commits are failing (a full disk or an I/O error); agents are not read" }
        if isFullWithBackpressure { return "the outbox is full (--retention-bytes) of undelivered samples; agents are not read" }
        return shipper?.notReadyReason
    }
    public var queuedSamples: Int { uncommitted.load(ordering: .relaxed) }
    /// While commits fail, samples read would only pile up in memory (57 k of them on a full
    /// disk: issue #18, item 3), so the server stops reading as soon as one commit fails.
    public var refusesSamples: Bool { !ready.load(ordering: .relaxed) || isFullWithBackpressure }
    /// Shipping to InfluxDB: a full outbox means "stop reading" until delivery frees room (or
    /// the oldest undelivered data goes, when the operator chose that).
    private var isFullWithBackpressure: Bool { shipper != nil && !dropOldestWhenFull && outbox.totalBytes >= retentionBytes }
    /// Past this many samples waiting for fsync (a stalled disk), agents are not read.
    public var highWater: Int { 1_000_000 }
    public var lowWater: Int { 500_000 }
    public var durableTicket: UInt64 { durable.load(ordering: .acquiring) }
    public var lineProtocolDrops: LineProtocolDrops { drops.withLock { $0 } }

    /// Most bytes of packed samples (and their names) in one outbox record. One frame's samples
    /// may expand far past the frame (420 k tiny samples in a 2.5 MB frame were 67 MB of lines,
    /// past the record limit: issue #10, defect 1; packed, 35 MB), so a stream's samples are cut
    /// into records of at most this much. (Their lines, made when shipped, are about 2–3× as
    /// large: the shipper's memory bounds count lines.)
    public static let maxRecordLineBytes = 4 << 20
    /// Most bytes one packed sample may take; a larger one is left out and counted as a dropped
    /// point. With `maxRecordLineBytes` this keeps every record (at most 4 MiB, plus one sample
    /// and the names it brought, plus a series key of at most 32 bounded labels) below
    /// `OutboxSegment.maxRecordSize` (64 MiB) whatever a peer sends, so `Outbox.append` never
    /// meets a record it must refuse. (A 16 MiB frame, the largest accepted, packs to less than
    /// 16 MiB of samples and names: an extra gauge is at least 11 bytes on the wire and 10 packed.)
    public static let maxLineBytes = 32 << 20

    public func append(_ samples: ScoredSamples, series stream: StreamSeries, record: NodeRecord, highestSeq: UInt64) -> UInt64 {
        var d = stream.lineSeriesDrops
        // The series key (measurement, host, tenant, labels) once per record (defect 8), made
        // once per stream; the samples packed, their lines made only when shipped or exported
        // (issue #17, item 2).
        let series = stream.lineSeriesKey ?? []
        var packed = PackedSamples()
        packed.reserve(samples: min(samples.count, Self.maxRecordLineBytes / 64))
        var ticket: UInt64 = 0
        var inRecord = 0
        var plan = stream.extraGauges.withLock { $0 }
        defer {
            plan.trim()  // a peer's thousands of names are not held for the stream's life
            stream.extraGauges.withLock { $0 = plan }
        }
        for index in 0..<samples.count {
            let before = packed.bytes.count
            if !series.isEmpty {
                packed.append(samples.samples[index], score: samples.scores[index], anomalous: samples.flagged[index], drops: &d,
                              plan: &plan)
            }
            if series.isEmpty || packed.bytes.count - before > Self.maxLineBytes {
                packed.truncate(to: before)
                d.points += 1
            }
            inRecord += 1
            let last = index == samples.count - 1
            if last || packed.byteCount >= Self.maxRecordLineBytes {
                // Samples arrive in seq order, so this record's highest seq is its last sample's
                // (the stream's highest for the final record).
                let seq = last ? highestSeq : samples.samples[index].seq
                ticket = appendRecord(OutboxBatch(tenant: stream.tenant, node: stream.node, highestSeq: seq,
                                                  sampleCount: inRecord, series: series, packed: packed), record: record, samples: inRecord)
                packed.removeAll()
                inRecord = 0
            }
        }
        if d != LineProtocolDrops() { drops.withLock { $0.add(d) } }
        return ticket
    }

    public func appendIncidents(_ events: [IncidentEvent], record: NodeRecord, highestSeq: UInt64) -> UInt64? {
        var d = LineProtocolDrops()
        var lines: [UInt8] = []
        var encoder = LineProtocolEncoder()
        for event in events {
            let i = event.incident
            let opened = if case .opened = event { true } else { false }
            let point = IncidentMetrics.point(opened: opened, id: i.id, node: i.node, tenant: i.tenant, startNs: i.startNs,
                                              endNs: i.endNs, peakScore: i.peakScore, flagged: i.flagged, drivers: i.summary)
            _ = encoder.append(point, to: &lines)
        }
        d.add(encoder.drops)
        if d != LineProtocolDrops() { drops.withLock { $0.add(d) } }
        guard !lines.isEmpty, let first = events.first?.incident else { return nil }
        // sampleCount 0: recovery and the shipper read it as a record of no samples.
        return appendRecord(OutboxBatch(tenant: first.tenant, node: first.node, highestSeq: highestSeq, sampleCount: 0, lines: lines),
                            record: record, samples: 0)
    }

    private func appendRecord(_ batch: OutboxBatch, record: NodeRecord, samples: Int) -> UInt64 {
        let payload = batch.encode()
        // The ticket is taken and queued under one lock, so tickets enter `waiting` in order.
        let ticket = waiting.withLock { list in
            let ticket = outbox.append(payload)
            list.append((ticket, record, batch.highestSeq))
            _ = uncommitted.wrappingAdd(samples, ordering: .relaxed)
            lastTicket.store(ticket, ordering: .releasing)
            return ticket
        }
        if committerIdle.exchange(false, ordering: .acquiringAndReleasing) { sem_post(wake) }
        return ticket
    }

    /// Starts the committer thread.
    public func start(onDurable: @escaping @Sendable (UInt64) -> Void) {
        guard thread == nil else { return }
        self.onDurable = onDurable
        thread = PosixThread { [self] in commitLoop() }
        shipper?.start()
    }

    deinit {
        sem_destroy(wake)
        wake.deallocate()
    }

    /// Commits what is left and stops the committer (server shutdown: drain, flush, fsync).
    public func stop() {
        guard let thread else { return }
        stopping.store(true, ordering: .releasing)
        sem_post(wake)
        thread.join()
        self.thread = nil
        commitOnce()
        shipper?.stop()
    }

    private func commitLoop() {
        while !stopping.load(ordering: .acquiring) {
            if !hasPending {
                // Say we are going to wait, then look again: an append between the first look
                // and the flag would otherwise not post, and its ack would wait a whole second.
                committerIdle.store(true, ordering: .sequentiallyConsistent)
                if !hasPending {
                    waitForAppend(Self.idleWakeNs)
                }
                committerIdle.store(false, ordering: .sequentiallyConsistent)
            }
            if commitDelayNs > 0 && hasPending { Self.sleep(commitDelayNs) }
            // A failing commit (a full disk) is retried every 100 ms, not in a busy loop.
            if !commitOnce() { Self.sleep(100_000_000) }
        }
    }

    private static func sleep(_ ns: UInt64) {
        var pause = timespec(tv_sec: Int(ns / 1_000_000_000), tv_nsec: Int(ns % 1_000_000_000))
        var left = timespec()
        while nanosleep(&pause, &left) != 0 && errno == EINTR { pause = left }
    }

    /// Records appended and not yet committed.
    private var hasPending: Bool { lastTicket.load(ordering: .acquiring) > durable.load(ordering: .acquiring) }

    /// Waits for an append's post, at most `ns` (a stale post from an earlier round only
    /// makes one turn of the loop commit nothing).
    private func waitForAppend(_ ns: UInt64) {
        var deadline = timespec()
        clock_gettime(CLOCK_REALTIME, &deadline)
        let total = UInt64(deadline.tv_nsec) + ns
        deadline.tv_sec += Int(total / 1_000_000_000)
        deadline.tv_nsec = Int(total % 1_000_000_000)
        while sem_timedwait(wake, &deadline) != 0 && errno == EINTR {}
    }

    /// One group commit; false when it failed.
    @discardableResult
    private func commitOnce() -> Bool {
        let pendingSamples = uncommitted.load(ordering: .relaxed)
        let before = durable.load(ordering: .relaxed)
        let ticket: UInt64
        let started = Clock.monotonicNanos()
        do {
            ticket = try outbox.commit()
            if pendingSamples > 0 { commitLatency.record(Double(Clock.monotonicNanos() - started) / 1e9) }
        } catch {
            commitFailures.add()
            if ready.exchange(false, ordering: .relaxed) { Log.error("outbox_commit_failed", ["error": error, "note": "acks wait and agents are not read until a commit succeeds; retrying"]) }
            return false
        }
        if !ready.exchange(true, ordering: .relaxed) { Log.info("outbox_commit_recovered") }
        if ticket > before { commits.add() }
        _ = uncommitted.wrappingSubtract(pendingSamples, ordering: .relaxed)
        let done = waiting.withLock { list -> ArraySlice<(ticket: UInt64, record: NodeRecord, seq: UInt64)> in
            let count = list.firstIndex { $0.ticket > ticket } ?? list.count
            defer { list.removeFirst(count) }
            return list[..<count]
        }
        for entry in done { entry.record.markDurable(entry.seq) }
        durable.store(ticket, ordering: .releasing)
        if !done.isEmpty { onDurable?(ticket) }
        // With the acks on their way: zeros for the next commits to write over, when short.
        outbox.prepareNextCommits()
        enforceRetention()
        return true
    }

    public var metricsText: String {
        let d = lineProtocolDrops
        let histogram = commitLatency.prometheusText(name: "gridmon_sink_commit_seconds",
                                                     help: "Time to write and fdatasync one group commit of the outbox.")
        func line(_ name: String, _ type: String, _ help: String, _ value: CustomStringConvertible) -> String {
            "# HELP gridmon_\(name) \(help)\n# TYPE gridmon_\(name) \(type)\ngridmon_\(name) \(value)\n"
        }
        let shipping = shipper?.metricsText ?? ""
        return histogram + shipping + line("outbox_bytes", "gauge", "Bytes in the durable outbox (segment files and buffer).", outbox.totalBytes)
            + line("outbox_durable_record", "gauge", "Highest outbox record fsync'ed.", durableTicket)
            + line("outbox_commits_total", "counter", "Group commits (write + fdatasync).", commits.value)
            + line("outbox_commit_failures_total", "counter", "Commits that failed (retried; acks wait).", commitFailures.value)
            + line("outbox_retention_deleted_bytes_total", "counter", "Bytes of the oldest segments deleted to stay within the retention limit.", retentionDeletedBytes.value)
            + line("outbox_dropped_undelivered_bytes_total", "counter", "Bytes of undelivered segments deleted because the outbox was full (drop-oldest policy).", droppedUndeliveredBytes.value)
            + "# HELP gridmon_line_protocol_dropped_total Elements line protocol cannot carry, left out.\n# TYPE gridmon_line_protocol_dropped_total counter\n"
            + "gridmon_line_protocol_dropped_total{what=\"non_finite_field\"} \(d.nonFiniteFields)\n"
            + "gridmon_line_protocol_dropped_total{what=\"newline\"} \(d.newlineElements)\n"
            + "gridmon_line_protocol_dropped_total{what=\"empty_tag\"} \(d.emptyTags)\n"
            + "gridmon_line_protocol_dropped_total{what=\"point\"} \(d.points)\n"
            + "gridmon_line_protocol_dropped_total{what=\"bad_field_name\"} \(d.badNames)\n"
    }

    /// The embedded store keeps at most `retentionBytes`, and nothing older than
    /// `retentionSeconds`: oldest segments go first.
    private func enforceRetention() {
        if shipper != nil {
            // Undelivered data is deleted only under the drop-oldest policy.
            guard dropOldestWhenFull, outbox.totalBytes > retentionBytes, outbox.segmentPaths.count > 1 else { return }
            if let freed = try? outbox.deleteOldest(bytesOver: outbox.totalBytes - retentionBytes), freed > 0 {
                droppedUndeliveredBytes.add(UInt64(freed))
                Log.error("outbox_full_dropped_oldest", ["deleted_bytes": freed, "kept_bytes": outbox.totalBytes, "limit": retentionBytes,
                                                         "note": "undelivered samples lost (--outbox-full-policy drop-oldest)"])
            }
            return
        }
        // By age at most once a second: commits come as fast as fsyncs finish now, and the age
        // check stats segment files.
        let now = Clock.monotonicNanos()
        if retentionSeconds > 0, outbox.segmentPaths.count > 1, now - lastAgeCheckNs >= 1_000_000_000 {
            lastAgeCheckNs = now
            let cutoff = Int(Clock.unixNanos() / 1_000_000_000) - retentionSeconds
            if let freed = try? outbox.deleteSegments(lastWrittenBefore: cutoff), freed > 0 {
                retentionDeletedBytes.add(UInt64(freed))
                Log.info("outbox_retention", ["deleted_bytes": freed, "reason": "age", "limit_seconds": retentionSeconds])
            }
        }
        guard outbox.totalBytes > retentionBytes, outbox.segmentPaths.count > 1 else { return }
        let total = outbox.totalBytes
        // Delete whole segments from the oldest until under the limit (never the current one).
        if let freed = try? outbox.deleteOldest(bytesOver: total - retentionBytes), freed > 0 {
            retentionDeletedBytes.add(UInt64(freed))
            Log.info("outbox_retention", ["deleted_bytes": freed, "kept_bytes": outbox.totalBytes, "limit": retentionBytes])
        }
    }
}

