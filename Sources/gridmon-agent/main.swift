// gridmon-agent: streams this machine's gauges to a GridMon server. See `gridmon-agent --help`.
//
// Exit codes: 0 clean shutdown (SIGINT/SIGTERM, acks drained or kept in --buffer-dir);
// 64 bad flags or variables (EX_USAGE); 69 cannot start (EX_UNAVAILABLE).
import ArgumentParser
import GridMonAgent
import GridMonConfig
import GridMonCore
import GridMonPosix
import GridMonTLS
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
        abstract: "Streams this machine's metrics (cpu, mem, swap, system, processes, disk, diskio, net, textfile) to a GridMon server.",
        discussion: """
            One persistent TCP connection to the first server that answers (host names are \
            resolved at every connect, IPv4 and IPv6); fails over down the --server list and \
            returns to the first after --failback. Reconnects with jittered exponential backoff \
            and resends what the server has not acknowledged. While disconnected, samples are \
            kept in memory, or with --buffer-dir on disk across restarts, crashes and SIGTERM; \
            past --buffer-max-bytes or --buffer-max-age the oldest are dropped, counted, logged \
            and sent as the gauge agent_buffer_dropped_total.

            Every option has the GRIDMON_… environment variable shown, and a key in the TOML \
            file of --config; flag wins over variable, variable over file, and a bad value in \
            any is an error naming it. Durations take ms/s/m/h/d, sizes KiB/MiB/GiB. Logs on stderr; \
            anomaly verdicts are logged as event=anomaly. Exit codes: 0 clean shutdown, 64 bad \
            flags or variables, 69 cannot start.
            """,
        version: BuildInfo.versionLine("gridmon-agent"))

    @Option(help: "Server HOST:PORT or [IPV6]:PORT; repeat or comma-separate for failover, first preferred. [GRIDMON_SERVER] (default: 127.0.0.1:7070)")
    var server: [String] = []
    @Option(help: "Node id (written as the host tag). [GRIDMON_NODE_ID] (default: the hostname)")
    var nodeID: String?
    @Option(help: "Auth token; visible in ps, prefer --token-file. [GRIDMON_TOKEN]")
    var token: String?
    @Option(help: "File holding the auth token; refused when group or others may read it (chmod 600). [GRIDMON_TOKEN_FILE]")
    var tokenFile: String?
    @Option(help: "Labels KEY=VALUE, comma-separated. [GRIDMON_LABELS]")
    var labels: String?
    @Option(parsing: .unconditional, help: "Time between samples, 0.01s ... 1h. [GRIDMON_INTERVAL] (default: 1s)")
    var interval: String?
    @Option(help: "Inputs to run, comma-separated, of: \(CollectorConfig.all.joined(separator: ",")). [GRIDMON_COLLECTORS] (default: all)")
    var collectors: String?
    @Option(help: "Mount points of the disk input, comma-separated. [GRIDMON_MOUNTS] (default: every real filesystem)")
    var mounts: String?
    @Option(help: "Disks of the diskio input, comma-separated. [GRIDMON_DEVICES] (default: every whole disk)")
    var devices: String?
    @Option(help: "Interfaces of the net input, comma-separated. [GRIDMON_INTERFACES] (default: every one but lo that is up)")
    var interfaces: String?
    @Option(help: "Per-core cpu_usage_* gauges: true or false. [GRIDMON_PER_CPU] (default: false)")
    var perCPU: String?
    @Option(help: "Directory of node_exporter-style *.prom files (name value lines) read each interval. [GRIDMON_TEXTFILE_DIR]")
    var textfileDir: String?
    @Option(help: "Filesystem whose use is the fixed disk gauge. [GRIDMON_DISK_PATH] (default: /)")
    var diskPath: String?
    @Option(help: "Directory of the disk buffer (unacknowledged samples survive restarts). [GRIDMON_BUFFER_DIR] (default: memory only)")
    var bufferDir: String?
    @Option(parsing: .unconditional, help: "Most samples kept in memory while unacknowledged. [GRIDMON_BUFFER] (default: 86400)")
    var buffer: String?
    @Option(parsing: .unconditional, help: "Most bytes of unacknowledged samples, in memory or on disk. [GRIDMON_BUFFER_MAX_BYTES] (default: 64MiB)")
    var bufferMaxBytes: String?
    @Option(parsing: .unconditional, help: "Disk buffer: samples older than this are dropped. [GRIDMON_BUFFER_MAX_AGE] (default: 24h)")
    var bufferMaxAge: String?
    @Option(parsing: .unconditional, help: "On a fallback server, return to the first after this. [GRIDMON_FAILBACK] (default: 5m)")
    var failback: String?
    @Option(parsing: .unconditional, help: "Give up a connect after this, and a server that sent no Welcome after twice this. [GRIDMON_CONNECT_TIMEOUT] (default: 5s)")
    var connectTimeout: String?
    @Flag(help: "Speak TLS to the servers, verifying them against the system's CAs or --tls-ca. [GRIDMON_TLS=true]")
    var tls = false
    @Option(help: "PEM file of the CAs that sign the servers' certificates. [GRIDMON_TLS_CA] (default: the system's store)")
    var tlsCa: String?
    @Option(help: "Name the server certificate must carry. [GRIDMON_TLS_SERVER_NAME] (default: each --server's host)")
    var tlsServerName: String?
    @Option(help: "PEM certificate for mutual TLS (with --tls-key). [GRIDMON_TLS_CERT]")
    var tlsCert: String?
    @Option(help: "PEM key of --tls-cert (mode 0600). [GRIDMON_TLS_KEY]")
    var tlsKey: String?
    @Flag(help: "Do not verify the server (anyone on the path can read and change the data); logged loudly. [GRIDMON_TLS_INSECURE_SKIP_VERIFY=true]")
    var tlsInsecureSkipVerify = false
    @Option(help: "Log level: debug, info, warn, error. [GRIDMON_LOG_LEVEL] (default: info)")
    var logLevel: String?
    @Option(help: "Log line format on stderr: logfmt or json; times are RFC 3339. [GRIDMON_LOG_FORMAT] (default: logfmt)")
    var logFormat: String?
    @Option(help: "TOML file of settings: keys are the options' names with _ for - (server = [\"a:7070\", \"b:7070\"], collectors, textfile_dir, buffer_dir, …); a flag or variable wins over it. [GRIDMON_CONFIG]")
    var config: String?
    @Flag(help: "Take one sample (two reads one interval apart, for rates), print it as JSON and exit.")
    var once = false

    /// The flag's value, else its variable's, with the key to name in errors.
    private func value(_ flag: String?, _ name: String, _ variable: String) -> (text: String, key: String)? {
        if let flag { return (flag, "--\(name)") }
        return Settings.shared.text(name, variable: variable)
    }

    private func parse<T>(_ flag: String?, _ name: String, _ variable: String, default fallback: T,
                          _ expected: String, _ convert: (String) -> T?) throws -> T {
        guard let (text, key) = value(flag, name, variable) else { return fallback }
        guard let parsed = convert(text) else { throw ValidationError("\(key): expected \(expected), got '\(text)'") }
        return parsed
    }

    private func list(_ flag: String?, _ name: String, _ variable: String) -> [String]? {
        value(flag, name, variable).map { SettingValues.list($0.text) }
    }

    /// Every setting, checked: flag first, then variable, then default.
    func settings() throws -> (config: AgentConfig, logLevel: Log.Level, logFormat: Log.Format) {
        var config = AgentConfig()
        let serverTexts = server.isEmpty ? (Settings.shared.list("server") ?? ["127.0.0.1:7070"]) : server.flatMap(SettingValues.list)
        let serverKey = Settings.shared.origin("server")
        guard !serverTexts.isEmpty else { throw ValidationError("\(serverKey): no server given") }
        config.servers = try serverTexts.map { text in
            guard let endpoint = Endpoint(parsing: text) else {
                throw ValidationError("\(serverKey): expected HOST:PORT or [IPV6]:PORT, got '\(text)'")
            }
            return endpoint
        }
        config.nodeID = value(nodeID, "node-id", "GRIDMON_NODE_ID")?.text ?? hostname()
        guard !config.nodeID.isEmpty, config.nodeID.utf8.count <= 256 else { throw ValidationError("--node-id must be 1 to 256 bytes") }
        config.token = try readToken()
        config.labels = try parsedLabels()
        let seconds = try parse(interval, "interval", "GRIDMON_INTERVAL", default: 1.0, "seconds (1, 500ms, 10s)", SettingValues.seconds)
        guard seconds >= 0.01, seconds <= 3600 else { throw ValidationError("\(value(interval, "interval", "GRIDMON_INTERVAL")!.key): must be 0.01s ... 1h, got \(seconds)s") }
        config.intervalNs = UInt64(seconds * 1e9)
        if let names = list(collectors, "collectors", "GRIDMON_COLLECTORS") {
            let unknown = names.filter { !CollectorConfig.all.contains($0) }
            guard unknown.isEmpty, !names.isEmpty else {
                throw ValidationError("\(value(collectors, "collectors", "GRIDMON_COLLECTORS")!.key): unknown input '\(unknown.first ?? "")'; inputs are \(CollectorConfig.all.joined(separator: ","))")
            }
            config.collectors.enabled = Set(names)
        }
        config.collectors.mounts = list(mounts, "mounts", "GRIDMON_MOUNTS")
        config.collectors.devices = list(devices, "devices", "GRIDMON_DEVICES")
        config.collectors.interfaces = list(interfaces, "interfaces", "GRIDMON_INTERFACES")
        config.collectors.perCPU = try parse(perCPU, "per-cpu", "GRIDMON_PER_CPU", default: false, "true or false", SettingValues.bool)
        let disk = value(diskPath, "disk-path", "GRIDMON_DISK_PATH")
        config.collectors.diskPath = disk?.text ?? "/"
        guard DiskCollector.canReport(config.collectors.diskPath) else {
            throw ValidationError("\(disk?.key ?? "--disk-path"): cannot read the filesystem at '\(config.collectors.diskPath)' (statvfs failed)")
        }
        if let (dir, key) = value(textfileDir, "textfile-dir", "GRIDMON_TEXTFILE_DIR") {
            guard (try? Files.list(dir)) != nil else { throw ValidationError("\(key): '\(dir)' is not a readable directory") }
            config.collectors.textfileDirectory = dir
        }
        config.bufferDirectory = value(bufferDir, "buffer-dir", "GRIDMON_BUFFER_DIR")?.text
        config.bufferCapacity = try parse(buffer, "buffer", "GRIDMON_BUFFER", default: 86_400, "a count of samples, at least 1") {
            Int($0).flatMap { $0 >= 1 ? $0 : nil }
        }
        config.bufferMaxBytes = try parse(bufferMaxBytes, "buffer-max-bytes", "GRIDMON_BUFFER_MAX_BYTES", default: 64 << 20,
                                          "a size of at least 64KiB (65536, 64MiB)") { SettingValues.bytes($0).flatMap { $0 >= 65536 ? $0 : nil } }
        let maxAge = try parse(bufferMaxAge, "buffer-max-age", "GRIDMON_BUFFER_MAX_AGE", default: 86_400.0, "a duration of at least 1s (24h)") {
            SettingValues.seconds($0).flatMap { $0 >= 1 && $0 <= 3.65e7 ? $0 : nil }
        }
        config.bufferMaxAgeNs = Int64(maxAge * 1e9)
        let failbackSeconds = try parse(failback, "failback", "GRIDMON_FAILBACK", default: 300.0, "a duration of at least 1s (5m)") {
            SettingValues.seconds($0).flatMap { $0 >= 1 && $0 <= 3.65e7 ? $0 : nil }
        }
        config.failbackNs = UInt64(failbackSeconds * 1e9)
        let timeout = try parse(connectTimeout, "connect-timeout", "GRIDMON_CONNECT_TIMEOUT", default: 5.0, "a duration of 0.1s ... 10m (5s)") {
            SettingValues.seconds($0).flatMap { $0 >= 0.1 && $0 <= 600 ? $0 : nil }
        }
        config.connectTimeoutNs = UInt64(timeout * 1e9)
        config.welcomeTimeoutNs = 2 * config.connectTimeoutNs
        let useTLS = try tls || parse(nil, "tls", "GRIDMON_TLS", default: false, "true or false", SettingValues.bool)
        let skipVerify = try tlsInsecureSkipVerify
            || parse(nil, "tls-insecure-skip-verify", "GRIDMON_TLS_INSECURE_SKIP_VERIFY", default: false, "true or false", SettingValues.bool)
        let ca = value(tlsCa, "tls-ca", "GRIDMON_TLS_CA")
        let certificate = value(tlsCert, "tls-cert", "GRIDMON_TLS_CERT")
        let key = value(tlsKey, "tls-key", "GRIDMON_TLS_KEY")
        config.tlsServerName = value(tlsServerName, "tls-server-name", "GRIDMON_TLS_SERVER_NAME")?.text
        if !useTLS, let given = ca ?? certificate ?? key {
            throw ValidationError("\(given.key) needs --tls (GRIDMON_TLS=true)")
        }
        guard (certificate == nil) == (key == nil) else { throw ValidationError("--tls-cert and --tls-key go together") }
        if useTLS {
            if let key { try checkPrivate(key.text, key.key) }
            do {
                config.tls = try TLSContext(client: TLSClientConfig(caPath: ca?.text, certificatePath: certificate?.text,
                                                                    keyPath: key?.text, insecureSkipVerify: skipVerify))
            } catch {
                throw ValidationError("TLS: \(error)")
            }
            config.tlsInsecureSkipVerify = skipVerify
        }
        let level = try parse(logLevel, "log-level", "GRIDMON_LOG_LEVEL", default: Log.Level.info, "debug, info, warn or error") { Log.Level(name: $0) }
        let format = try parse(logFormat, "log-format", "GRIDMON_LOG_FORMAT", default: Log.Format.logfmt, "logfmt or json") { Log.Format(name: $0) }
        // Last: every key has been asked for by now, so the file's others are mistakes.
        if let problem = Settings.shared.firstProblem() { throw ValidationError(problem) }
        return (config, level, format)
    }

    /// Refuses a secret file group or others may read, as ssh refuses a private key.
    func checkPrivate(_ path: String, _ key: String) throws {
        var info = stat()
        guard stat(path, &info) == 0 else { throw ValidationError("\(key): cannot read '\(path)': \(SyscallError(call: "stat", errno: errno))") }
        guard info.st_mode & 0o077 == 0 else {
            throw ValidationError("\(key): permissions \(String(info.st_mode & 0o777, radix: 8)) for '\(path)' are too open; chmod 600 it")
        }
    }

    func readToken() throws -> String {
        let file = value(tokenFile, "token-file", "GRIDMON_TOKEN_FILE")
        let inline = value(token, "token", "GRIDMON_TOKEN")
        guard let (path, key) = file else { return inline?.text ?? "" }
        guard inline == nil else { throw ValidationError("\(key) and \(inline!.key): give the token one way") }
        // As ssh refuses a private key others can read: the token is the node's credential.
        try checkPrivate(path, key)
        let text: String
        do { text = try Files.readText(path, maxBytes: 4096) } catch { throw ValidationError("\(key): \(error)") }
        let tokenText = text.trimmingSpaces().split(separator: "\n").first.map(String.init)?.trimmingSpaces() ?? ""
        guard !tokenText.isEmpty else { throw ValidationError("\(key): '\(path)' holds no token") }
        return tokenText
    }

    func parsedLabels() throws -> [Label] {
        guard let (text, key) = value(labels, "labels", "GRIDMON_LABELS") else { return [] }
        return try text.split(separator: ",").map { pair in
            let kv = pair.split(separator: "=", maxSplits: 1)
            guard kv.count == 2, !kv[0].isEmpty else { throw ValidationError("\(key): expected KEY=VALUE, got '\(pair)'") }
            return Label(key: String(kv[0]), value: String(kv[1]))
        }
    }

    /// Empty: ArgumentParser validates before it reports unknown options, so a misspelt flag
    /// was answered with whatever the settings found wrong; they are checked in `run`.
    func validate() throws {}

    func run() throws {
        let (config, level, format) = try settings()
        Log.setLevel(level)
        Log.setFormat(format)
        if once {
            let sampler = SystemSampler(config.collectors)
            _ = sampler.sample(seq: 0)
            usleep(UInt32(min(Double(config.intervalNs) / 1e3, 60e6)))
            print(SampleJSON.encode(sampler.sample(seq: 1), node: config.nodeID))
            return
        }
        do {
            try Agent(config: config).run()
        } catch {
            Log.error("cannot_start", ["error": error])
            throw ExitCode(69)
        }
    }
}

Settings.shared.load(arguments: CommandLine.arguments, environment: processEnvironment()) { try Files.readText($0, maxBytes: 1 << 20) }
AgentCommand.main()
