// gridmon-agent: streams this machine's gauges to a GridMon server. See `gridmon-agent --help`.
//
// Exit codes: 0 clean shutdown (SIGINT/SIGTERM, acks drained); 64 bad flags (EX_USAGE);
// 69 cannot start (EX_UNAVAILABLE).
import ArgumentParser
import GridMonAgent
import GridMonPosix
import GridMonWire
#if canImport(Glibc)
import Glibc
#endif


func hostname() -> String {
    var buffer = [CChar](repeating: 0, count: 256)
    guard gethostname(&buffer, buffer.count) == 0 else { return "localhost" }
    return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

struct AgentCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gridmon-agent",
        abstract: "Streams this machine's CPU, memory, disk, load, network and disk I/O to a GridMon server.",
        discussion: """
            One persistent TCP connection; reconnects with jittered exponential backoff and
            resends what the server has not acknowledged; buffers up to --buffer samples while
            disconnected (oldest dropped past that, counted and logged). Every option has the
            GRIDMON_… environment variable shown. Logs on stderr; anomaly verdicts are logged
            as event=anomaly. Exit codes: 0 clean shutdown, 64 bad flags, 69 cannot start.
            """)

    @Option(help: "Server address HOST:PORT. [GRIDMON_SERVER]")
    var server: String = environment("GRIDMON_SERVER") ?? "127.0.0.1:7070"
    @Option(help: "Node id (written as the host tag). [GRIDMON_NODE_ID] (default: the hostname)")
    var nodeID: String = environment("GRIDMON_NODE_ID") ?? hostname()
    @Option(help: "Auth token. [GRIDMON_TOKEN]")
    var token: String = environment("GRIDMON_TOKEN") ?? ""
    @Option(help: "Labels KEY=VALUE, comma-separated. [GRIDMON_LABELS]")
    var labels: String = environment("GRIDMON_LABELS") ?? ""
    @Option(help: "Seconds between samples. [GRIDMON_INTERVAL]")
    var interval: Double = environment("GRIDMON_INTERVAL").flatMap { Double($0) } ?? 1
    @Option(help: "Samples kept while unacknowledged (a day at one per second). [GRIDMON_BUFFER]")
    var buffer: Int = environment("GRIDMON_BUFFER").flatMap { Int($0) } ?? 86_400
    @Option(help: "Filesystem whose use is reported as disk %. [GRIDMON_DISK_PATH]")
    var diskPath: String = environment("GRIDMON_DISK_PATH") ?? "/"
    @Option(help: "Log level: debug, info, warn, error. [GRIDMON_LOG_LEVEL]")
    var logLevel: String = environment("GRIDMON_LOG_LEVEL") ?? "info"
    @Flag(help: "Print two samples one interval apart and exit (checks what the agent reads).")
    var once = false

    func parsedLabels() throws -> [Label] {
        try labels.split(separator: ",").map { pair in
            let kv = pair.split(separator: "=", maxSplits: 1)
            guard kv.count == 2, !kv[0].isEmpty else { throw ValidationError("--labels: expected KEY=VALUE, got '\(pair)'") }
            return Label(key: String(kv[0]), value: String(kv[1]))
        }
    }

    func validate() throws {
        guard SocketAddress(parsing: server) != nil else { throw ValidationError("--server: expected HOST:PORT (IPv4), got '\(server)'") }
        guard !nodeID.isEmpty, nodeID.utf8.count <= 256 else { throw ValidationError("--node-id must be 1 to 256 bytes") }
        guard interval >= 0.01, interval <= 3600 else { throw ValidationError("--interval must be 0.01 ... 3600 seconds") }
        guard buffer >= 1 else { throw ValidationError("--buffer must be at least 1") }
        guard Log.Level(name: logLevel) != nil else { throw ValidationError("--log-level: debug, info, warn or error") }
        _ = try parsedLabels()
    }

    func run() throws {
        Log.setLevel(Log.Level(name: logLevel)!)
        if once {
            let sampler = SystemSampler(diskPath: diskPath)
            _ = sampler.sample(seq: 0)
            usleep(UInt32(interval * 1_000_000))
            let s = sampler.sample(seq: 1)
            print("cpu=\(s.cpuPercent) memory=\(s.memoryPercent) disk=\(s.diskPercent) load1=\(s.load1) net_rx=\(s.netRxBytesPerSec) net_tx=\(s.netTxBytesPerSec) disk_read=\(s.diskReadBytesPerSec) disk_write=\(s.diskWriteBytesPerSec)")
            return
        }
        var config = AgentConfig()
        config.server = SocketAddress(parsing: server)!
        config.nodeID = nodeID
        config.token = token
        config.labels = try parsedLabels()
        config.intervalNs = UInt64(interval * 1e9)
        config.bufferCapacity = buffer
        config.diskPath = diskPath
        do {
            try Agent(config: config).run()
        } catch {
            Log.error("cannot_start", ["error": error])
            throw ExitCode(69)
        }
    }
}

AgentCommand.main()
