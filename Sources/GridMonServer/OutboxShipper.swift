import GridMonCore
import GridMonOutbox
import GridMonPosix
import GridMonSink
import GridMonStore
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Ships the outbox to InfluxDB, oldest record first, and deletes what was delivered.
///
/// Records are grouped by tenant (each tenant has its own database or bucket) into posts of
/// up to `batchLines` lines. The answer decides what happens, as the best clients do: written
/// → the cursor moves on; rejected (400/422: bad points, type conflicts) → the batch is halved
/// until the bad lines stand alone, those go to `dead-letter.lp` with InfluxDB's message and
/// the rest flows; too large (413) → halved; 429/503 → wait Retry-After; 401/403, 404 (unless
/// `createContainers`), other 5xx and no answer → capped exponential backoff with jitter, the
/// data kept. The cursor (last delivered record) is kept in `shipped.cursor`; a crash may
/// resend a batch, which InfluxDB absorbs (same series and timestamp overwrite themselves).
///
/// Threading: one thread of its own; counters readable from any thread.
public final class OutboxShipper: @unchecked Sendable {  // mutable state is the shipper thread's own
    public let target: InfluxTarget
    private let outbox: Outbox
    private let directory: String
    private let createContainers: Bool
    private let batchLines: Int
    /// Records read ahead of delivery are kept under this many bytes.
    static let maxPendingBytes = 8 << 20
    private let flushIntervalNs: UInt64
    private var lastPostNs: UInt64 = 0
    private var nextIntervalNs: UInt64 = 0
    private let stopping = Atomic<Bool>(false)
    private let healthy = Atomic<Bool>(true)
    public let shippedLines = Atomic<UInt64>(0)
    public let posts = Atomic<UInt64>(0)
    public let failures = Atomic<UInt64>(0)
    public let deadLetterLines = Atomic<UInt64>(0)
    public let cursorRecord = Atomic<UInt64>(0)
    private var thread: PosixThread?
    private var rng = SplitMix64(seed: UInt64(truncatingIfNeeded: Clock.monotonicNanos()))
    private var failuresInARow = 0

    /// - Parameters: a batch is posted when it has `batchLines` lines or `flushIntervalNs`
    ///   (±20 % jitter, so a fleet of servers does not write in lockstep) has passed.
    public init(outbox: Outbox, target: InfluxTarget, directory: String, createContainers: Bool, batchLines: Int = 5000,
                flushIntervalNs: UInt64 = 1_000_000_000) {
        self.flushIntervalNs = flushIntervalNs
        self.outbox = outbox
        self.target = target
        self.directory = directory
        self.createContainers = createContainers
        self.batchLines = batchLines
        cursorRecord.store(Self.loadCursor(directory), ordering: .relaxed)
    }

    /// False while InfluxDB refuses or cannot be reached (reported by /readyz).
    public var isReady: Bool { healthy.load(ordering: .relaxed) }

    public func start() {
        guard thread == nil else { return }
        thread = PosixThread { [self] in loop() }
    }

    public func stop() {
        guard let thread else { return }
        stopping.store(true, ordering: .releasing)
        thread.join()
        self.thread = nil
    }

    // MARK: - The loop

    private func loop() {
        let writer = InfluxWriter(target: target)
        // Records read but not yet delivered, oldest first; the outbox is read strictly in
        // order (it continues where the last read stopped, without rescanning).
        var pending: [(UInt64, [UInt8])] = []
        var pendingHead = 0
        var pendingBytes = 0  // bounded: records can be large (one stream's whole read)
        var nextToRead = cursorRecord.load(ordering: .relaxed) + 1
        while !stopping.load(ordering: .acquiring) {
            let cursor = cursorRecord.load(ordering: .relaxed)
            if pendingBytes < Self.maxPendingBytes {
                do {
                    let more = try outbox.read(from: nextToRead, limit: 256)
                    if let last = more.last { nextToRead = last.0 + 1 }
                    pending.removeFirst(pendingHead)
                    pendingHead = 0
                    pending += more
                    pendingBytes += more.reduce(0) { $0 + $1.1.count }
                } catch {
                    Log.error("shipper_read_failed", ["error": error])
                    pause(1_000_000_000)
                    continue
                }
            }
            if pendingHead == pending.count {
                pause(100_000_000)
                continue
            }
            // One tenant's consecutive records, up to batchLines lines.
            var tenant: String?
            var lines: [ArraySlice<UInt8>] = []
            var last = cursor
            var used = pendingHead
            while used < pending.count && lines.count < batchLines {
                let (number, payload) = pending[used]
                guard let batch = try? OutboxBatch(decoding: payload[...]) else {
                    Log.error("shipper_bad_record", ["record": number])  // CRC-checked, so a format bug: skip it, loudly
                    last = number
                    used += 1
                    continue
                }
                if let tenant, tenant != batch.tenant { break }
                tenant = batch.tenant
                lines += batch.lines.split(separator: UInt8(ascii: "\n"))
                last = number
                used += 1
            }
            // Batches close on size or on time (with jitter).
            let now = Clock.monotonicNanos()
            if nextIntervalNs == 0 { nextIntervalNs = jittered() }
            if lines.count < batchLines && used == pending.count && now - lastPostNs < nextIntervalNs {
                pause(min(nextIntervalNs - (now - lastPostNs), 50_000_000))
                continue
            }
            lastPostNs = now
            nextIntervalNs = jittered()
            if let tenant, !lines.isEmpty {
                guard deliver(lines[...], tenant: tenant, writer: writer) else { continue }  // stopping
            }
            pendingBytes -= pending[pendingHead..<used].reduce(0) { $0 + $1.1.count }
            pendingHead = used
            cursorRecord.store(last, ordering: .relaxed)
            Self.saveCursor(directory, last)
            _ = try? outbox.deleteSegments(upTo: last)
        }
    }

    /// Delivers `lines` (or dead-letters what InfluxDB refuses). False only when stopping.
    private func deliver(_ lines: ArraySlice<ArraySlice<UInt8>>, tenant: String, writer: InfluxWriter) -> Bool {
        var body: [UInt8] = []
        for line in lines { body += line; body.append(UInt8(ascii: "\n")) }
        while !stopping.load(ordering: .acquiring) {
            posts.add()
            let outcome = writer.write(body, tenant: tenant)
            switch outcome {
            case .written:
                recovered()
                shippedLines.add(UInt64(lines.count))
                return true
            case .rejected(let status, let message):
                recovered()
                if lines.count == 1 {
                    deadLetter(body, status: status, message: message, tenant: tenant)
                    return true
                }
                return split(lines, tenant: tenant, writer: writer)
            case .tooLarge:
                recovered()
                if lines.count == 1 {
                    deadLetter(body, status: 413, message: "a single line is larger than InfluxDB accepts", tenant: tenant)
                    return true
                }
                return split(lines, tenant: tenant, writer: writer)
            case .notFound(let message) where createContainers:
                if writer.createContainer(tenant: tenant) {
                    Log.info("influx_database_created", ["database": target.container(for: tenant)])
                    continue
                }
                failed("influx_not_found", message)
            case .notFound(let message):
                failed("influx_not_found", "\(target.container(for: tenant)) does not exist (\(message)); --influx-create would create it")
            case .unauthorized(let status, let message):
                failed("influx_unauthorized", "HTTP \(status): \(message)")
            case .busy(let status, let retryAfter):
                failures.add()
                Log.warning("influx_busy", ["status": status, "retry_after_s": retryAfter ?? -1])
                pause(UInt64((retryAfter ?? backoffSeconds()) * 1e9))
                continue
            case .failed(let why):
                failed("influx_write_failed", why)
            }
            pause(UInt64(backoffSeconds() * 1e9))
        }
        return false
    }

    private func split(_ lines: ArraySlice<ArraySlice<UInt8>>, tenant: String, writer: InfluxWriter) -> Bool {
        let middle = lines.startIndex + lines.count / 2
        return deliver(lines[..<middle], tenant: tenant, writer: writer) && deliver(lines[middle...], tenant: tenant, writer: writer)
    }

    private func failed(_ event: String, _ why: String) {
        failures.add()
        failuresInARow += 1
        if healthy.exchange(false, ordering: .relaxed) || failuresInARow % 20 == 0 {
            Log.error(event, ["target": target.baseURL, "error": why, "note": "data kept in the outbox; retrying"])
        }
    }

    private func recovered() {
        failuresInARow = 0
        if !healthy.exchange(true, ordering: .relaxed) { Log.info("influx_writes_recovered", ["target": target.baseURL]) }
    }

    private func jittered() -> UInt64 {
        UInt64(Double(flushIntervalNs) * (0.8 + 0.4 * rng.nextUnit()))
    }

    /// Capped exponential backoff with full jitter: 0.2 s doubling to 30 s.
    private func backoffSeconds() -> Double {
        let cap = min(30.0, 0.2 * Double(1 << min(failuresInARow, 8)))
        return cap * (0.5 + 0.5 * rng.nextUnit())
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

    private func deadLetter(_ body: [UInt8], status: Int, message: String, tenant: String) {
        let lineCount = body.split(separator: UInt8(ascii: "\n")).count
        deadLetterLines.add(UInt64(lineCount))
        let header = "# \(Clock.unixNanos()) tenant=\(tenant) status=\(status) \(message.split(separator: "\n").joined(separator: " "))\n"
        let path = directory + "/dead-letter.lp"
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        if fd >= 0 {
            let bytes = Array(header.utf8) + body
            _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            close(fd)
        }
        Log.warning("influx_rejected_lines", ["lines": lineCount, "status": status, "message": message, "dead_letter": path])
    }

    private static func loadCursor(_ directory: String) -> UInt64 {
        guard let text = try? Files.readText(directory + "/shipped.cursor") else { return 0 }
        return UInt64(text.trimmingSpaces().split(separator: "\n").first ?? "") ?? 0
    }

    private static func saveCursor(_ directory: String, _ record: UInt64) {
        // Not fsync'ed: a cursor lost in a crash only means a batch is sent again, which
        // InfluxDB absorbs.
        try? Files.writeAtomically(directory + "/shipped.cursor", Array("\(record)\n".utf8), sync: false)
    }
}
