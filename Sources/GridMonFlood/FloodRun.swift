import Glibc
import GridMonCore
import GridMonPosix
import GridMonWire

/// A flood run: opens the connections, pumps samples, collects acks, and stops by count or
/// time, then waits (bounded) for the last acks.
///
/// One epoll reactor on the calling thread drives every connection, so the client stays
/// cheap next to the server it measures. Threading: `run()` blocks its thread until done.
public final class FloodRun {
    public let config: FloodConfig
    let reactor: Reactor
    let encoder = MessageEncoder()
    let decoder = MessageDecoder()
    public internal(set) var stats = FloodStats()
    var random: SplitMix64
    /// Builds the sample `seq` of `node` (deterministic, so a resend repeats the same values).
    let workload: (_ node: String, _ seq: UInt64) -> Sample
    /// Called once per second with the stats so far (progress display).
    public var onProgress: ((FloodStats, _ elapsedNs: UInt64) -> Void)?
    /// Called for every anomaly verdict, with the simulator's label when known.
    public var onAnomaly: ((_ node: String, _ seq: UInt64, _ score: Double, _ label: String?) -> Void)?
    /// Fleet and replay modes: the samples, and the labels verdicts are scored against.
    public let fleet: LabelledWorkload?

    private var connections: [FloodConnection] = []
    private var started: UInt64 = 0
    private(set) var sendingStopped = false
    private var stoppedByCount = false
    private var drainScheduled = false
    private(set) var finished = false
    private var remaining: UInt64
    public private(set) var sendingNs: UInt64 = 0
    public private(set) var elapsedNs: UInt64 = 0

    /// - Parameter fleet: send this labelled workload (simulated fleet, replayed file) instead of `workload`.
    public init(config: FloodConfig, fleet: LabelledWorkload? = nil,
                workload: @escaping (_ node: String, _ seq: UInt64) -> Sample = FloodRun.steadyWorkload) throws(SyscallError) {
        self.config = config
        self.reactor = try Reactor()
        self.random = SplitMix64(seed: config.seed)
        self.fleet = fleet
        let base = fleet.map { f in { node, seq in f.sample(node: node, seq: seq) } } ?? workload
        if config.extraGauges > 0 {
            let names = AgentGauges.names(config.extraGauges)
            self.workload = { node, seq in
                var sample = base(node, seq)
                sample.extra += AgentGauges.gauges(names, seq: seq)
                return sample
            }
        } else {
            self.workload = base
        }
        if fleet != nil { stats.detection = DetectionTally() }
        self.remaining = config.totalSamples ?? UInt64.max
        if let limit = perStreamLimit {
            remaining = limit * UInt64(config.connections * config.streamsPerConnection)
        }
    }

    /// Samples still allowed by the count limit.
    var budget: Int { Int(min(remaining, UInt64(Int.max))) }
    /// Fleet mode splits the count limit evenly across nodes, so a seed fixes exactly which
    /// samples every node sends (and the run's verdicts, for a deterministic server).
    var perStreamLimit: UInt64? {
        guard let fleet else { return nil }
        let split = config.totalSamples.map { max(1, $0 / UInt64(config.connections * config.streamsPerConnection)) }
        switch (split, fleet.samplesPerNode) {
        case (let a?, let b?): return min(a, b)
        case (let a?, nil): return a
        case (nil, let b?): return b
        case (nil, nil): return nil
        }
    }

    /// A cheap, plausible sample: values vary with seq so frames are not all alike.
    public static func steadyWorkload(_ node: String, _ seq: UInt64) -> Sample {
        let phase = Double(seq % 600) / 600
        return Sample(seq: seq, timestampNs: 1_700_000_000_000_000_000 + Int64(seq) * 1_000_000_000,
                      cpuPercent: 20 + 10 * phase, memoryPercent: 45 + phase, diskPercent: 61.5, load1: 0.5 + phase,
                      netRxBytesPerSec: 120_000 + 1000 * phase, netTxBytesPerSec: 64_000, diskReadBytesPerSec: 4096,
                      diskWriteBytesPerSec: 16_384 * phase)
    }

    /// Runs to completion and returns what was measured.
    public func run() throws(SyscallError) -> FloodStats {
        started = Clock.monotonicNanos()
        var connectionIndex = 0
        for c in 0..<config.connections {
            let streams = (0..<config.streamsPerConnection).map { s in
                FloodStream(id: UInt32(s + 1), node: "\(config.nodePrefix)-\(c)-\(s)")
            }
            connections.append(FloodConnection(run: self, streams: streams))
        }
        // Ramp up: open connections in slices so the server's accept queue is not overrun.
        func rampUp() {
            let end = min(connections.count, connectionIndex + config.connectsPerTick)
            while connectionIndex < end {
                connections[connectionIndex].connect()
                connectionIndex += 1
            }
            if connectionIndex < connections.count { reactor.schedule(afterNanos: 10_000_000) { rampUp() } }
        }
        rampUp()
        if let duration = config.durationNs {
            reactor.schedule(afterNanos: duration) { [unowned self] in self.stopSending() }
        } else {
            // Bounded by count alone, a run whose target never answers would retry for ever:
            // give up when nothing at all was acknowledged within 30 s.
            reactor.schedule(afterNanos: 30_000_000_000) { [unowned self] in
                if self.stats.samplesAcked == 0 {
                    self.stats.error("nothing_acked_in_30s")
                    self.finish()
                }
            }
        }
        if let rate = config.ratePerStream {
            schedulePacing(rate: rate)
        }
        scheduleProgress()
        try reactor.run()
        elapsedNs = Clock.monotonicNanos() - started
        for connection in connections { connection.close() }
        return stats
    }

    func sent(samples: Int) {
        stats.samplesSent += UInt64(samples)
        stats.framesSent += 1
        remaining -= UInt64(samples)
        if remaining == 0 {
            stoppedByCount = true
            stopSending()
        }
    }

    /// Samples sent but lost in a broken connection: they will be sent again after the
    /// reconnect, so they count as not sent yet.
    func unsent(samples: UInt64) {
        guard samples > 0 else { return }
        stats.samplesSent -= samples
        stats.samplesResent += samples
        remaining += samples
        if stoppedByCount && !finished {
            // The count limit had stopped sending; the lost samples still have to go.
            stoppedByCount = false
            sendingStopped = false
        }
    }

    func acked(samples: UInt64, anomalies: Int) {
        stats.samplesAcked += samples
        stats.anomaliesReported += UInt64(anomalies)
        if sendingStopped && stats.samplesAcked >= stats.samplesSent { finish() }
    }

    func anomaly(node: String, seq: UInt64, score: Double) {
        onAnomaly?(node, seq, score, fleet?.label(node: node, seq: seq)?.kind)
    }

    /// Scores the acknowledged `seqs` of `node` against the fleet's labels.
    func tally(node: String, seqs: ClosedRange<UInt64>, flagged: Set<UInt64>) {
        guard let fleet, stats.detection != nil else { return }
        for seq in seqs {
            stats.detection!.record(node: node, seq: seq, flagged: flagged.contains(seq), incident: fleet.label(node: node, seq: seq))
        }
    }

    /// A verdict for `node`'s `seq`, whose sample `tally` already counted (see
    /// `DetectionTally.flaggedLate`).
    func flaggedLate(node: String, seq: UInt64) {
        guard let fleet, stats.detection != nil else { return }
        stats.detection!.flaggedLate(node: node, seq: seq, incident: fleet.label(node: node, seq: seq))
    }

    func recordLatency(sentNs: UInt64, nanos: UInt64, count: Int) {
        _ = stats.latencyMicros.record(max(1, nanos / 1000), count: UInt64(count))
        if config.latencyAfterNs > 0 && sentNs >= started + config.latencyAfterNs {
            _ = stats.laterLatencyMicros.record(max(1, nanos / 1000), count: UInt64(count))
        }
    }

    private func stopSending() {
        guard !sendingStopped else { return }
        sendingStopped = true
        sendingNs = Clock.monotonicNanos() - started
        if stats.samplesAcked >= stats.samplesSent { return finish() }
        guard !drainScheduled else { return }
        drainScheduled = true
        reactor.schedule(afterNanos: config.drainNs) { [unowned self] in
            self.stats.error("unacked_at_end")
            self.finish()
        }
    }

    /// Ends the run early on SIGINT or SIGTERM as its duration would: sending stops, the last
    /// acks are awaited (bounded, as at the end of any run) and `run()` returns the report; a
    /// second signal stops at once. Blocks both signals in the calling thread, so call it
    /// before any other thread starts (threads inherit the mask); they are read from a
    /// `SignalSource` on the run's reactor. For the executable: tests leave the process's
    /// signals alone. - Throws: `SyscallError` when the signalfd cannot be made or registered.
    public func stopOnSignals() throws(SyscallError) {
        let signals = try SignalSource([SIGINT, SIGTERM]) { [unowned self] signal in
            let name = signal == SIGINT ? "SIGINT" : "SIGTERM"
            if self.sendingStopped {
                Log.info("stopping_now", ["signal": name])
                self.finish()
            } else {
                Log.info("stopping", ["signal": name, "note": "waiting for the last acks; signal again to stop at once"])
                self.stopSending()
            }
        }
        try reactor.register(signals.fd, events: .readable, handler: signals)
    }

    private func finish() {
        guard !finished else { return }
        finished = true
        reactor.handle.stop()
    }

    /// Paced mode: each connection wakes once per `batch / rate` seconds and lets each of its
    /// streams send one frame. Deadlines advance by the period from the previous deadline (no
    /// drift), and each connection starts at a random phase so they do not send in lockstep.
    private func schedulePacing(rate: Double) {
        let periodNs = UInt64(Double(config.batchSize) / rate * 1e9)
        for connection in connections {
            let phase = UInt64.random(in: 0...max(1, periodNs), using: &random)
            pace(connection, due: Clock.monotonicNanos() + phase, periodNs: periodNs)
        }
    }

    private func pace(_ connection: FloodConnection, due: UInt64, periodNs: UInt64) {
        let now = Clock.monotonicNanos()
        reactor.schedule(afterNanos: due > now ? due - now : 0) { [unowned self] in
            guard !self.sendingStopped else { return }
            if connection.isConnected { connection.addCredits(Double(self.config.batchSize)) }
            self.pace(connection, due: due + periodNs, periodNs: periodNs)
        }
    }

    private func scheduleProgress() {
        reactor.schedule(afterNanos: 1_000_000_000) { [unowned self] in
            guard !self.finished else { return }
            self.onProgress?(self.stats, Clock.monotonicNanos() - self.started)
            self.scheduleProgress()
        }
    }
}

