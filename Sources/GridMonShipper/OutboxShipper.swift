import GridMonCore
import GridMonOutbox
import GridMonPosix
import GridMonSink
import GridMonStore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Ships the outbox to InfluxDB, one lane per tenant, and deletes what was delivered.
///
/// One reader goes through the outbox in order and hands each record to its tenant's lane
/// (`ShipperLane`); each lane posts batches of up to `batchLines` lines to its database or
/// bucket, up to `concurrency` at once, over keep-alive connections of its own. All requests run at once through one
/// `CurlMulti`, so a slow or failing target holds up only its own tenant, and the reader
/// reads ahead (up to `maxPendingBytes`) while InfluxDB answers.
///
/// The answer decides what happens, as the best clients do: written → delivered; rejected
/// (400/422: bad points, type conflicts) → the batch is halved until the bad lines stand
/// alone, those go to `dead-letter.lp` with InfluxDB's message and the rest flows; too large
/// (413) → halved; 429/503 → wait Retry-After; 401/403, 404 (unless `createContainers`),
/// other 5xx and no answer → capped exponential backoff with jitter, the data kept.
///
/// A probe (`GET /ping`, every `probeIntervalNs`, answered within the target's probe timeout)
/// watches the target apart from the writes: a target that stops answering shows in
/// `notReadyReason` within a couple of seconds (a write in flight only times out after 10 s,
/// and with nothing to write no write ever fails), and one that answers again is written to
/// at once instead of at the end of a backoff of up to 30 s (issue #18, item 5).
///
/// Progress is kept in `shipped.cursor`: the record below which everything is delivered
/// (segments up to it are deleted), then each lane that is further ahead. A crash may resend
/// a batch, which InfluxDB absorbs (same series and timestamp overwrite themselves).
///
/// Threading: one thread of its own; counters and metrics readable from any thread.
public final class OutboxShipper: @unchecked Sendable {  // mutable state is the shipper thread's own
    public let target: InfluxTarget
    private let outbox: Outbox
    private let directory: String
    private let createContainers: Bool
    private let batchLines: Int
    private let concurrency: Int
    private let flushIntervalNs: UInt64
    /// Records read ahead of delivery, for lanes that are not failing, are kept under this.
    static let maxPendingBytes = 8 << 20
    /// What a failing tenant keeps in memory (at least one batch; the rest stays on disk).
    static let failingBytes = 1 << 20
    /// A catch-up read stops once its lane holds this much.
    static let catchUpBytes = 4 << 20

    /// How often the target is probed (a fixed interval, whatever the writes' backoff).
    public static let probeIntervalNs: UInt64 = 1_000_000_000

    private let stopping = Atomic<Bool>(false)
    private let failingLanes = Atomic<Int>(0)
    /// The last probe was answered (optimistic until the first one, sent at start).
    private let answering = Atomic<Bool>(true)
    public let probeFailures = Atomic<UInt64>(0)
    public let shippedLines = Atomic<UInt64>(0)
    public let posts = Atomic<UInt64>(0)
    public let failures = Atomic<UInt64>(0)
    public let deadLetterLines = Atomic<UInt64>(0)
    /// Everything at or below this outbox record is delivered.
    public let cursorRecord = Atomic<UInt64>(0)
    /// The outbox record up to which the shared reader has read (delivered or not).
    public let readRecord = Atomic<UInt64>(0)
    /// Records read and not yet delivered, over all lanes (queued or in a batch being sent).
    public let pendingRecords = Atomic<Int>(0)
    /// Write requests waiting for InfluxDB's answer.
    public let requestsInFlight = Atomic<Int>(0)
    private let writeLatency = LatencyHistogram()
    private var thread: PosixThread?

    // The shipper thread's own state.
    private var lanes: [String: ShipperLane] = [:]
    /// Idle connections per tenant, and what each busy one is sending (tenant, delivery).
    private var idleWriters: [String: [InfluxWriter]] = [:]
    private var busyWriters: [ObjectIdentifier: (tenant: String, delivery: UInt64)] = [:]
    private var nextToRead: UInt64
    private var savedCursor = ""
    private var rng = SplitMix64(seed: UInt64(truncatingIfNeeded: Clock.monotonicNanos()))
    private var prober: InfluxWriter?
    private var probeInFlight = false
    private var nextProbeNs: UInt64 = 0

    /// - Parameters: a tenant's batch is posted when it has `batchLines` lines or
    ///   `flushIntervalNs` (±20 % jitter, so a fleet of servers does not write in lockstep)
    ///   has passed since its last post; up to `concurrency` batches per tenant are in flight
    ///   at once (InfluxDB parses concurrent writes on several cores).
    public init(outbox: Outbox, target: InfluxTarget, directory: String, createContainers: Bool, batchLines: Int = 5000,
                flushIntervalNs: UInt64 = 1_000_000_000, concurrency: Int = 2) {
        self.concurrency = max(1, concurrency)
        self.flushIntervalNs = flushIntervalNs
        self.outbox = outbox
        self.target = target
        self.directory = directory
        self.createContainers = createContainers
        self.batchLines = batchLines
        let (safe, ahead) = Self.loadCursor(directory)
        nextToRead = safe + 1
        cursorRecord.store(safe, ordering: .relaxed)
        for (tenant, through) in ahead { lanes[tenant] = ShipperLane(tenant: tenant, deliveredThrough: through, intervalNs: flushIntervalNs) }
    }

    /// Why delivery is not working now (reported by /readyz), or nil: the target does not
    /// answer its probe, or some tenant's writes fail (refused, not found, no answer).
    public var notReadyReason: String? {
        if !answering.load(ordering: .relaxed) { return "InfluxDB at \(target.displayURL) is not answering" }
        let failing = failingLanes.load(ordering: .relaxed)
        return failing == 0 ? nil : "writes to InfluxDB at \(target.displayURL) are failing for \(failing) tenant(s)"
    }

    public func start() {
        guard thread == nil else { return }
        thread = PosixThread { [self] in loop() }
    }

    /// Stops after the requests in flight are abandoned; undelivered data stays in the outbox.
    public func stop() {
        guard let thread else { return }
        stopping.store(true, ordering: .releasing)
        thread.join()
        self.thread = nil
    }

    public var metricsText: String {
        func line(_ name: String, _ type: String, _ help: String, _ value: CustomStringConvertible) -> String {
            "# HELP gridmon_\(name) \(help)\n# TYPE gridmon_\(name) \(type)\ngridmon_\(name) \(value)\n"
        }
        return line("influx_lines_written_total", "counter", "Lines InfluxDB accepted.", shippedLines.value)
            + line("influx_posts_total", "counter", "Write requests sent to InfluxDB.", posts.value)
            + line("influx_failures_total", "counter", "Writes that failed or were refused (retried).", failures.value)
            + line("influx_dead_letter_lines_total", "counter", "Lines InfluxDB rejected, kept in dead-letter.lp.", deadLetterLines.value)
            + line("influx_shipped_record", "gauge", "Outbox record up to which everything is delivered.", cursorRecord.load(ordering: .relaxed))
            + line("influx_read_record", "gauge", "Outbox record up to which the shipper has read.", readRecord.load(ordering: .relaxed))
            + line("influx_pending_records", "gauge", "Outbox records read and not yet delivered (queued or being sent).", pendingRecords.load(ordering: .relaxed))
            + line("influx_requests_in_flight", "gauge", "Write requests waiting for InfluxDB's answer.", requestsInFlight.load(ordering: .relaxed))
            + line("influx_failing_tenants", "gauge", "Tenants whose database or bucket is failing (retried).", failingLanes.load(ordering: .relaxed))
            + line("influx_up", "gauge", "1 when InfluxDB answered the last probe (GET /ping every second), else 0.", answering.load(ordering: .relaxed) ? 1 : 0)
            + line("influx_probe_failures_total", "counter", "Probes of InfluxDB that got no answer.", probeFailures.value)
            + writeLatency.prometheusText(name: "gridmon_influx_write_seconds", help: "Duration of each write request to InfluxDB, answer included.")
    }

    // MARK: - The loop

    private func loop() {
        let multi = CurlMulti()
        while !stopping.load(ordering: .acquiring) {
            let now = Clock.monotonicNanos()
            if !probeInFlight && now >= nextProbeNs {
                let writer = prober ?? InfluxWriter(target: target)
                prober = writer
                probeInFlight = true
                multi.startProbe(writer)
            }
            catchUp(nowNs: now)
            // Requests go out before more is read: formatting what is read takes a few
            // milliseconds, during which InfluxDB would sit idle waiting for the next batch
            // (with one connection GridMon reached 87-89 % of a plain writer's rate that way).
            startRequests(multi, nowNs: now)
            let readMore = readAhead()
            if readMore { startRequests(multi, nowNs: Clock.monotonicNanos()) }
            // Wait for InfluxDB's answers, but no longer than the next batch timer needs.
            let wait: Int32 = readMore ? 0 : 20
            let done = multi.poll(timeoutMs: wait)
            for (writer, outcome) in done {
                if writer === prober { probed(outcome) } else { handle(outcome, writer: writer) }
            }
            if multi.inFlight == 0 && done.isEmpty && !readMore { pause(20_000_000) }
            advanceCursor()
        }
        multi.cancelAll()
        advanceCursor()
    }

    /// Posts every batch that is due now, tenant by tenant, and sends them at once.
    private func startRequests(_ multi: CurlMulti, nowNs: UInt64) {
        var started = false
        for tenant in Array(lanes.keys) {
            while let (delivery, body) = lanes[tenant]!.nextRequest(nowNs: nowNs, batchLines: batchLines, concurrency: concurrency) {
                lanes[tenant]!.intervalNs = jittered()
                let writer = idleWriters[tenant]?.popLast() ?? InfluxWriter(target: target)
                busyWriters[ObjectIdentifier(writer)] = (tenant, delivery)
                posts.add()
                multi.start(writer, lines: body, tenant: tenant)
                started = true
            }
        }
        if started { multi.send() }
    }

    /// Packed bytes read (and formatted as lines) per turn of the loop: about 700 samples,
    /// under a millisecond of formatting, so the requests in flight are driven and an answered
    /// request is replaced within about that long.
    static let readBytesPerTurn = 64 << 10

    /// Reads the next records from the outbox into their lanes while those not failing hold
    /// less than `maxPendingBytes`. True when it read something (there may be more).
    private func readAhead() -> Bool {
        let held = lanes.values.reduce(0) { $0 + ($1.isFailing || $1.skippedFrom != nil ? 0 : $1.queuedBytes) }
        guard held < Self.maxPendingBytes else { return false }
        let records: [(UInt64, [UInt8])]
        do {
            records = try outbox.read(from: nextToRead, limit: 256, maxBytes: min(Self.readBytesPerTurn, Self.maxPendingBytes - held))
        } catch {
            Log.error("shipper_read_failed", ["error": error])
            pause(1_000_000_000)
            return false
        }
        for (number, payload) in records {
            nextToRead = number + 1
            guard let batch = decode(number, payload) else { continue }
            let tenant = batch.tenant
            if lanes[tenant] == nil { lanes[tenant] = ShipperLane(tenant: tenant, intervalNs: jittered()) }
            lanes[tenant]!.offer(number, failingBytes: Self.failingBytes) { Self.record(number, batch) }
        }
        return !records.isEmpty
    }

    /// Reads the outbox again for a lane that recovered after records were let go.
    private func catchUp(nowNs: UInt64) {
        for tenant in Array(lanes.keys) where lanes[tenant]!.wantsCatchUp(nowNs: nowNs) {
            var from = lanes[tenant]!.skippedFrom!
            var found: [ShipperLane.Record] = []
            var bytes = 0
            var through = from - 1
            // Bounded work per turn (other tenants' records are read and passed over too), so
            // the requests in flight keep being driven.
            var reads = 0
            while bytes < Self.catchUpBytes && from < nextToRead && reads < 8 {
                reads += 1
                let records: [(UInt64, [UInt8])]
                do { records = try outbox.read(from: from, limit: 256, maxBytes: Self.catchUpBytes - bytes) } catch {
                    Log.error("shipper_read_failed", ["error": error, "tenant": tenant, "from": from])
                    break  // tried again on the next turn of the loop
                }
                guard !records.isEmpty else { break }
                for (number, payload) in records where number < nextToRead {
                    through = number
                    // Other tenants' records are passed over on their header alone (one whose
                    // header does not decode goes on to `decode`, which logs it).
                    if let header = try? OutboxBatch.header(decoding: payload[...]), header.tenant != tenant { continue }
                    guard let batch = decode(number, payload) else { continue }
                    let record = Self.record(number, batch)
                    found.append(record)
                    bytes += record.lines.count
                }
                from = records.last!.0 + 1
            }
            lanes[tenant]!.caughtUp(found, readThrough: through, sharedNext: nextToRead)
        }
    }

    private func decode(_ number: UInt64, _ payload: [UInt8]) -> OutboxBatch? {
        guard let batch = try? OutboxBatch(decoding: payload[...]) else {
            Log.error("shipper_bad_record", ["record": number])  // CRC-checked, so a format bug: skip it, loudly
            return nil
        }
        return batch
    }

    /// A lane's record of `batch`: its line protocol (a version-3 record's samples formatted
    /// here, once) and line count.
    private static func record(_ number: UInt64, _ batch: OutboxBatch) -> ShipperLane.Record {
        let lines = batch.lines
        // Counted with memchr: a byte-by-byte loop over every shipped byte was 9 % of the
        // server's CPU while it drained into InfluxDB.
        var count = 0
        lines.withUnsafeBytes { raw in
            guard var at = raw.baseAddress else { return }
            let end = at + raw.count
            while at < end, let newline = memchr(at, Int32(UInt8(ascii: "\n")), end - at) {
                count += 1
                at = UnsafeRawPointer(newline) + 1
            }
        }
        if let last = lines.last, last != UInt8(ascii: "\n") { count += 1 }
        return ShipperLane.Record(number: number, lines: lines, lineCount: count)
    }

    private func handle(_ outcome: WriteOutcome, writer: InfluxWriter) {
        guard let (tenant, delivery) = busyWriters.removeValue(forKey: ObjectIdentifier(writer)), lanes[tenant] != nil else { return }
        idleWriters[tenant, default: []].append(writer)
        writeLatency.record(writer.lastDuration)
        let now = Clock.monotonicNanos()
        let wasFailing = lanes[tenant]!.isFailing
        switch outcome {
        case .written:
            shippedLines.add(UInt64(lanes[tenant]!.pieceWritten(delivery)))
        case .rejected, .tooLarge:
            // A line refused alone goes to the dead-letter file; only once it is there does the
            // lane move past it (if the file cannot be written, the line is kept and retried).
            if let line = lanes[tenant]!.loneLine(delivery) {
                let (status, message) = if case .rejected(let status, let message) = outcome { (status, message) }
                    else { (413, "a single line is larger than InfluxDB accepts") }
                do { try deadLetter(line, status: status, message: message, tenant: tenant) } catch {
                    failed(tenant, delivery, "dead_letter_write_failed", "\(error)", now: now)
                    break
                }
            }
            _ = lanes[tenant]!.pieceRejected(delivery)
        case .notFound(let message):
            if createContainers && writer.createContainer(tenant: tenant) {
                Log.info("influx_database_created", ["database": target.container(for: tenant)])
                lanes[tenant]!.retryNow(delivery)
            } else {
                let hint = createContainers ? "" : "; --influx-create would create it"
                failed(tenant, delivery, "influx_not_found", "\(target.container(for: tenant)) does not exist (\(message))\(hint)", now: now)
            }
        case .unauthorized(let status, let message):
            failed(tenant, delivery, "influx_unauthorized", "HTTP \(status): \(message)", now: now)
        case .busy(let status, let retryAfter):
            failures.add()
            let delay = lanes[tenant]!.failed(delivery, nowNs: now, delaySeconds: retryAfter, jitter: rng.nextUnit(), failingBytes: Self.failingBytes)
            Log.warning("influx_busy", ["tenant": tenant, "status": status, "retry_after_s": delay])
        case .failed(let why):
            failed(tenant, delivery, "influx_write_failed", why, now: now)
        }
        let isFailing = lanes[tenant]!.isFailing
        if wasFailing != isFailing {
            _ = isFailing ? failingLanes.wrappingAdd(1, ordering: .relaxed) : failingLanes.wrappingSubtract(1, ordering: .relaxed)
            if !isFailing { Log.info("influx_writes_recovered", ["target": target.displayURL, "tenant": tenant]) }
        }
    }

    /// The probe's answer: any HTTP status means the target answers. A change is logged once;
    /// a target answering again cuts every failing lane's backoff short.
    private func probed(_ outcome: WriteOutcome) {
        let now = Clock.monotonicNanos()
        probeInFlight = false
        nextProbeNs = now + Self.probeIntervalNs
        let up: Bool
        if case .failed(let why) = outcome {
            up = false
            probeFailures.add()
            if answering.exchange(false, ordering: .relaxed) {
                Log.error("influx_not_answering", ["target": target.displayURL, "error": why,
                                                   "note": "data kept in the outbox; probing every second"])
            }
        } else {
            up = true
        }
        guard up, !answering.exchange(true, ordering: .relaxed) else { return }
        var resumed = 0
        for tenant in Array(lanes.keys) where lanes[tenant]!.isFailing {
            lanes[tenant]!.resume(nowNs: now)
            resumed += 1
        }
        Log.info("influx_answering_again", ["target": target.displayURL, "resumed_tenants": resumed])
    }

    private func failed(_ tenant: String, _ delivery: UInt64, _ event: String, _ why: String, now: UInt64) {
        failures.add()
        let delay = lanes[tenant]!.failed(delivery, nowNs: now, jitter: rng.nextUnit(), failingBytes: Self.failingBytes)
        let inARow = lanes[tenant]!.failuresInARow
        if inARow == 1 || inARow % 20 == 0 {
            Log.error(event, ["target": target.displayURL, "tenant": tenant, "error": why, "failures_in_a_row": inARow,
                              "retry_in_s": delay, "note": "data kept in the outbox; retrying"])
        }
    }

    /// Moves the delivered-everything mark, saves it with the lanes ahead of it, and deletes
    /// the segments below it.
    private func advanceCursor() {
        var safe = nextToRead - 1
        for lane in lanes.values { if let oldest = lane.oldestUndelivered { safe = min(safe, oldest - 1) } }
        var text = "\(safe)\n"
        for lane in lanes.values.sorted(by: { $0.tenant < $1.tenant }) where lane.deliveredThrough > safe {
            text += "\(lane.deliveredThrough) \(lane.tenant)\n"
        }
        readRecord.store(nextToRead - 1, ordering: .relaxed)
        pendingRecords.store(lanes.values.reduce(0) { $0 + $1.pendingRecords }, ordering: .relaxed)
        requestsInFlight.store(busyWriters.count, ordering: .relaxed)
        guard text != savedCursor else { return }
        // Not fsync'ed: a cursor lost in a crash only means batches are sent again, which
        // InfluxDB absorbs.
        try? Files.writeAtomically(directory + "/shipped.cursor", Array(text.utf8), sync: false)
        savedCursor = text
        if safe > cursorRecord.load(ordering: .relaxed) {
            cursorRecord.store(safe, ordering: .relaxed)
            _ = try? outbox.deleteSegments(upTo: safe)
        }
    }

    /// `shipped.cursor`: the delivered-everything record, then `<record> <tenant>` per lane
    /// ahead of it (tenant names hold no newline: they come from the tokens file's lines).
    private static func loadCursor(_ directory: String) -> (UInt64, [String: UInt64]) {
        guard let text = try? Files.readText(directory + "/shipped.cursor") else { return (0, [:]) }
        let lines = text.split(separator: "\n")
        let safe = UInt64(String(lines.first ?? "").trimmingSpaces()) ?? 0
        var ahead: [String: UInt64] = [:]
        for line in lines.dropFirst() {
            guard let space = line.firstIndex(of: " "), let record = UInt64(line[..<space]) else { continue }
            ahead[String(line[line.index(after: space)...])] = record
        }
        return (safe, ahead)
    }

    private func jittered() -> UInt64 {
        UInt64(Double(flushIntervalNs) * (0.8 + 0.4 * rng.nextUnit()))
    }

    /// Sleeps up to `nanos`, waking early when stopping.
    private func pause(_ nanos: UInt64) {
        var left = nanos
        while left > 0 && !stopping.load(ordering: .acquiring) {
            let step = min(left, 50_000_000)
            var ts = timespec(tv_sec: 0, tv_nsec: Int(step))
            nanosleep(&ts, nil)
            left -= step
        }
    }

    /// Appends `body` (refused lines) to `dead-letter.lp` under a `#` line with InfluxDB's
    /// message; counted once written.
    private func deadLetter(_ body: [UInt8], status: Int, message: String, tenant: String) throws(SyscallError) {
        let lineCount = body.split(separator: UInt8(ascii: "\n")).count
        let header = "# \(Clock.unixNanos()) tenant=\(tenant) status=\(status) \(message.split(separator: "\n").joined(separator: " "))\n"
        let path = directory + "/dead-letter.lp"
        try Files.append(path, Array(header.utf8) + body)
        deadLetterLines.add(UInt64(lineCount))
        Log.warning("influx_rejected_lines", ["lines": lineCount, "status": status, "message": message, "dead_letter": path])
    }
}
