// gridmon-flood: GridMon's load tester. See `gridmon-flood --help`.
//
// Exit codes: 0 the run completed and every sent sample was acknowledged; 1 the run completed
// but samples stayed unacknowledged or errors occurred; 64 bad flags (EX_USAGE);
// 69 the run could not start (EX_UNAVAILABLE). SIGINT/SIGTERM end a run early, with its report.
import ArgumentParser
import GridMonConfig
import GridMonCore
import GridMonFlood
import GridMonForest
import GridMonPosix
import GridMonTLS
#if canImport(Glibc)
import Glibc
#endif


struct Flood: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gridmon-flood",
        abstract: "Loads a GridMon server with simulated node streams and reports throughput and ack latency.",
        discussion: """
            --mode flood: synthetic steady samples. --mode fleet: a simulated fleet, each node with \
            its own baseline, daily cycle and noise, and labelled incidents (cpu-spike, stress-test, \
            crypto-mining, memory-leak, disk-filling, network-storm; deterministic with --seed); \
            the report then scores the server's verdicts (precision, recall, F1, delay per type). \
            Both run as fast as the server acknowledges (or paced with --rate), over --connections \
            connections carrying --streams node streams each, in frames of --batch samples, until \
            --samples were sent or --duration passed. Every run is bounded by one or both. \
            SIGINT or SIGTERM ends a run early the same way: sending stops, the last acks are \
            awaited and the report is printed (a second signal stops at once). Targets loopback unless --allow-remote. Every option has a GRIDMON_… environment twin. \
            Progress goes to stderr every second; the report to stdout (--json for scripts).

            Exit codes: 0 all acked, 1 unacked samples or none acked at all, 64 bad flags, 69 cannot start.
            """,
        version: BuildInfo.versionLine("gridmon-flood"))

    @Option(help: "flood, fleet or replay. [GRIDMON_MODE]")
    var mode: String = environment("GRIDMON_MODE") ?? "flood"

    @Option(help: "fleet: chance per node per 600 samples that an incident starts. [GRIDMON_INCIDENT_RATE]")
    var incidentRate: Double = Settings.shared.double("incident-rate", 0.2, variable: "GRIDMON_INCIDENT_RATE")

    @Option(help: "replay: CSV (with header) whose rows every node sends in order. [GRIDMON_REPLAY_FILE]")
    var replayFile: String = environment("GRIDMON_REPLAY_FILE") ?? ""

    @Option(help: "replay: labels CSV, one 0/1 per row, to score the verdicts against. [GRIDMON_REPLAY_LABELS]")
    var replayLabels: String = environment("GRIDMON_REPLAY_LABELS") ?? ""

    @Flag(help: "Print each anomaly verdict as it arrives (with the injected incident, in fleet mode). [GRIDMON_SHOW_ANOMALIES=1]")
    var showAnomalies: Bool = environment("GRIDMON_SHOW_ANOMALIES") == "1"

    @Option(help: "Server address HOST:PORT. [GRIDMON_TARGET]")
    var target: String = environment("GRIDMON_TARGET") ?? "127.0.0.1:7070"

    @Flag(help: "Allow a target that is not on loopback (127.0.0.0/8). [GRIDMON_ALLOW_REMOTE=1]")
    var allowRemote: Bool = environment("GRIDMON_ALLOW_REMOTE") == "1"

    @Option(help: "TCP connections. [GRIDMON_CONNECTIONS]")
    var connections: Int = Settings.shared.int("connections", 1, variable: "GRIDMON_CONNECTIONS")

    @Option(help: "Node streams multiplexed on each connection. [GRIDMON_STREAMS]")
    var streams: Int = Settings.shared.int("streams", 1, variable: "GRIDMON_STREAMS")

    @Option(help: "Samples per frame. [GRIDMON_BATCH]")
    var batch: Int = Settings.shared.int("batch", 64, variable: "GRIDMON_BATCH")

    @Option(help: "Named gauges added to every sample besides the fixed eight, shaped like gridmon-agent's (its 42 with every input on a machine with one mount, disk and interface; then textfile_gauge_<i>), 0 ... \(AgentGauges.maxCount). [GRIDMON_EXTRA_GAUGES]")
    var extraGauges: Int = Settings.shared.int("extra_gauges", 0, variable: "GRIDMON_EXTRA_GAUGES")

    @Option(help: "Stop after sending this many samples (0 = no count limit). [GRIDMON_SAMPLES]")
    var samples: UInt64 = Settings.shared.int("samples", 1_000_000, variable: "GRIDMON_SAMPLES")

    @Option(help: "Stop after this many seconds (0 = no time limit). [GRIDMON_DURATION]")
    var duration: Double = Settings.shared.double("duration", 0, variable: "GRIDMON_DURATION")

    @Option(help: "Samples per second per stream; 0 = as fast as acks allow. [GRIDMON_RATE]")
    var rate: Double = Settings.shared.double("rate", 0, variable: "GRIDMON_RATE")

    @Option(help: "Also report ack latency for the frames sent this many seconds after the start alone (0 = no): the steady state apart from the ramp-up of many connections. [GRIDMON_LATENCY_AFTER]")
    var latencyAfter: Double = Settings.shared.double("latency-after", 0, variable: "GRIDMON_LATENCY_AFTER")

    @Option(help: "Unacknowledged samples allowed per stream. [GRIDMON_WINDOW]")
    var window: Int = Settings.shared.int("window", 8192, variable: "GRIDMON_WINDOW")

    @Option(help: "Auth token sent in every Hello. [GRIDMON_TOKEN]")
    var token: String = environment("GRIDMON_TOKEN") ?? ""

    @Option(help: "Node id prefix. [GRIDMON_NODE_PREFIX]")
    var nodePrefix: String = environment("GRIDMON_NODE_PREFIX") ?? "flood"

    @Option(help: "Random seed (pacing phase, backoff jitter). [GRIDMON_SEED]")
    var seed: UInt64 = Settings.shared.int("seed", 1, variable: "GRIDMON_SEED")

    @Flag(help: "Print the final report as JSON. [GRIDMON_JSON=1]")
    var json: Bool = environment("GRIDMON_JSON") == "1"

    @Option(help: "fleet: samples per simulated day of the nodes' daily cycle (86400 = a real day at the samples' 1 s spacing; 1440 = the original's 24-minute day). [GRIDMON_DAY_SAMPLES]")
    var daySamples: UInt64 = Settings.shared.int("day-samples", 86_400, variable: "GRIDMON_DAY_SAMPLES")

    @Option(help: "fleet: the server's admin address HOST:PORT; its /api/v1/incidents, polled every 2 s during the run and once after it, are scored against the injected incidents (per-kind incident recall, delay, false incidents per node-hour), printed after the report (with --json, a second JSON line). [GRIDMON_ADMIN]")
    var admin: String = environment("GRIDMON_ADMIN") ?? ""
    @Option(help: "fleet: bearer token for the admin API, when the server has --admin-tokens-file (an every-tenant `*` token, or the fleet's tenant's). [GRIDMON_ADMIN_TOKEN]")
    var adminToken: String = environment("GRIDMON_ADMIN_TOKEN") ?? ""

    @Flag(help: "Speak TLS to the server, verifying it against --tls-ca (or the system's CAs). [GRIDMON_TLS=1]")
    var tls: Bool = environment("GRIDMON_TLS") == "1"
    @Option(help: "PEM file of the CA that signed the server's certificate. [GRIDMON_TLS_CA]")
    var tlsCa: String = environment("GRIDMON_TLS_CA") ?? ""
    @Option(help: "Name the server's certificate must carry (default: the --target host). [GRIDMON_TLS_SERVER_NAME]")
    var tlsServerName: String = environment("GRIDMON_TLS_SERVER_NAME") ?? ""

    @Flag(help: "No progress lines. [GRIDMON_QUIET=1]")
    var quiet: Bool = environment("GRIDMON_QUIET") == "1"

    func validate() throws {
        let address: SocketAddress
        switch SocketAddress.parse(target) {
        case .success(let parsed): address = parsed
        case .failure(let problem): throw ValidationError("--target: expected HOST:PORT or [IPV6]:PORT: \(problem), got '\(target)'")
        }
        guard allowRemote || address.isLoopback else {
            throw ValidationError("--target \(target) is not on loopback; pass --allow-remote to load another host on purpose")
        }
        guard ["flood", "fleet", "replay"].contains(mode) else { throw ValidationError("--mode is flood, fleet or replay") }
        guard admin.isEmpty || (mode == "fleet" && SocketAddress(parsing: admin).map { allowRemote || $0.isLoopback } == true) else {
            throw ValidationError("--admin needs --mode fleet and a loopback HOST:PORT")
        }
        guard mode != "replay" || !replayFile.isEmpty else { throw ValidationError("--mode replay needs --replay-file") }
        guard daySamples >= 1 else { throw ValidationError("--day-samples must be positive") }
        guard (0...1).contains(incidentRate) else { throw ValidationError("--incident-rate must be within 0...1") }
        guard samples > 0 || duration > 0 else { throw ValidationError("a run must be bounded: give --samples or --duration") }
        guard (1...60_000).contains(connections) else { throw ValidationError("--connections must be 1 ... 60000") }
        guard (1...10_000).contains(streams) else { throw ValidationError("--streams must be 1 ... 10000") }
        guard (1...100_000).contains(batch) else { throw ValidationError("--batch must be 1 ... 100000") }
        guard (0...AgentGauges.maxCount).contains(extraGauges) else { throw ValidationError("--extra-gauges must be 0 ... \(AgentGauges.maxCount)") }
        guard window >= batch else { throw ValidationError("--window must be at least --batch") }
        guard latencyAfter >= 0, latencyAfter <= 86_400 else { throw ValidationError("--latency-after must be 0 ... 86400 seconds") }
        guard rate >= 0, duration >= 0, duration <= 86_400 else { throw ValidationError("--rate and --duration must be non-negative (duration ≤ 1 day)") }
    }

    func run() throws {
        var config = FloodConfig()
        config.target = SocketAddress(parsing: target)!
        config.connections = connections
        config.streamsPerConnection = streams
        config.batchSize = batch
        config.extraGauges = extraGauges
        config.totalSamples = samples > 0 ? samples : nil
        config.durationNs = duration > 0 ? UInt64(duration * 1e9) : nil
        config.ratePerStream = rate > 0 ? rate : nil
        config.windowSamples = window
        config.latencyAfterNs = UInt64(latencyAfter * 1e9)
        config.authToken = token
        config.nodePrefix = nodePrefix
        config.seed = seed
        if tls {
            do { config.tls = try TLSContext(client: TLSClientConfig(caPath: tlsCa.isEmpty ? nil : tlsCa)) } catch {
                Log.error("bad_config", ["error": error])
                throw ExitCode(64)
            }
            config.tlsServerName = tlsServerName.isEmpty ? nil : tlsServerName
        }

        let flood: FloodRun
        var labelled: LabelledWorkload?
        if mode == "fleet" { labelled = FleetWorkload(seed: seed, incidentRate: incidentRate, daySamples: daySamples) }
        if mode == "replay" {
            do {
                let table = try CSVTable(parsing: Files.readText(replayFile), file: replayFile)
                let labels = replayLabels.isEmpty ? nil : try CSVTable(parsing: Files.readText(replayLabels), file: replayLabels)
                labelled = try ReplayWorkload(table: table, labels: labels)
            } catch {
                Log.error("bad_replay_input", ["error": error])
                throw ExitCode(1)
            }
        }
        do {
            flood = try FloodRun(config: config, fleet: labelled)
            try flood.stopOnSignals()  // before the incident collector's thread starts
        } catch {
            Log.error("cannot_start", ["error": error])
            throw ExitCode(69)
        }
        if !quiet {
            let terminal = isatty(2) == 1
            var last: UInt64 = 0
            flood.onProgress = { stats, elapsed in
                let rate = stats.samplesAcked - last
                last = stats.samplesAcked
                let line = "t=\(elapsed / 1_000_000_000)s rate=\(rate)/s acked=\(stats.samplesAcked) in_flight=\(stats.samplesSent - stats.samplesAcked) connected=\(stats.connectionsUp) reconnects=\(stats.reconnects) errors=\(stats.errors.values.reduce(0, +))"
                var text = terminal ? "\r\u{1B}[K" + line : line + "\n"
                text.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
            }
        }
        if showAnomalies {
            flood.onAnomaly = { node, seq, score, incident in
                let label = mode != "flood" ? " incident=\(incident ?? "none")" : ""
                var line = "anomaly node=\(node) seq=\(seq) score=\(String(format3(score)))\(label)\n"
                line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
            }
        }
        let collector = admin.isEmpty ? nil : SocketAddress(parsing: admin).map { IncidentFetch(admin: $0, token: adminToken) }
        collector?.start()
        let stats: FloodStats
        do { stats = try flood.run() } catch {
            Log.error("run_failed", ["error": error])
            throw ExitCode(69)
        }
        if !quiet && isatty(2) == 1 { _ = write(2, "\n", 1) }
        let report = FloodReport(stats: stats, elapsedNs: flood.elapsedNs, latencyAfterNs: config.latencyAfterNs)
        print(json ? report.json : report.text, terminator: json ? "\n" : "")
        if let collector, let fleet = labelled as? FleetWorkload {
            do {
                let score = try collector.finish(fleet: fleet)
                print(json ? IncidentFetch.json(score) : IncidentFetch.text(score), terminator: json ? "\n" : "")
            } catch {
                Log.error("incidents_unavailable", ["admin": admin, "error": error])
                throw ExitCode(1)
            }
        }
        if stats.samplesAcked < stats.samplesSent { throw ExitCode(1) }
        // Nothing got through (every connect refused, say): a failed run, not an empty success.
        if stats.samplesAcked == 0 {
            Log.error("nothing_acked", ["target": target, "errors": stats.errors.sorted { $0.key < $1.key }.map { "\($0.key)×\($0.value)" }.joined(separator: ", ")])
            throw ExitCode(1)
        }
    }
}

func format3(_ value: Double) -> String { String(Double(Int(value * 1000)) / 1000) }

// Variables are checked as strictly as flags: a bad GRIDMON_… value is an error naming it, not
// silently the default (issue #15). These tools take no settings file.
Settings.shared.load(arguments: [], environment: processEnvironment().filter { $0.key != "GRIDMON_CONFIG" }) { _ in "" }
do {
    var command = try Flood.parseAsRoot()
    if let problem = Settings.shared.problems.first { throw ValidationError(problem) }
    try command.run()
} catch {
    Flood.exit(withError: error)
}
