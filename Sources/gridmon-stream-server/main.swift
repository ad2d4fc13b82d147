// gridmon-stream-server: the GridMon daemon. See `gridmon-stream-server --help`.
//
// Exit codes: 0 clean shutdown (SIGINT/SIGTERM, drained); 64 bad flags or config
// (EX_USAGE); 69 cannot listen or start (EX_UNAVAILABLE).
import ArgumentParser
import GridMonPosix
import GridMonServer

/// A default taken from the environment variable `name`, so every flag has a GRIDMON_… twin.
func env(_ name: String) -> String? {
    guard let value = getenv(name) else { return nil }
    return String(cString: value)
}

#if canImport(Glibc)
import Glibc
#endif

struct StreamServer: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gridmon-stream-server",
        abstract: "Receives agent streams over TCP, scores every sample, and stores it.",
        discussion: """
            Every option can also be set by the environment variable shown in brackets;
            a flag on the command line wins. Logs go to stderr as key=value lines.
            SIGINT/SIGTERM: stop accepting, send Goodbye, drain, exit 0. SIGHUP: reload tokens.
            Exit codes: 0 clean shutdown, 64 bad flags or config, 69 cannot listen.
            """)

    @Option(help: "Address to listen on, HOST:PORT (port 0 = any free port). [GRIDMON_LISTEN]")
    var listen: String = env("GRIDMON_LISTEN") ?? "127.0.0.1:7070"

    @Option(help: "Admin HTTP address (/metrics, /healthz, /readyz, /api/v1/nodes), HOST:PORT, or 'off'. [GRIDMON_ADMIN_LISTEN]")
    var adminListen: String = env("GRIDMON_ADMIN_LISTEN") ?? "127.0.0.1:7071"

    @Option(help: "File of `TOKEN TENANT` lines that authenticate agents; reloaded on SIGHUP. [GRIDMON_TOKENS_FILE]")
    var tokensFile: String = env("GRIDMON_TOKENS_FILE") ?? ""

    @Flag(help: "Accept every agent without a token (demos only; logged loudly). [GRIDMON_INSECURE_NO_AUTH=1]")
    var insecureNoAuth: Bool = env("GRIDMON_INSECURE_NO_AUTH") == "1"

    @Option(help: "Reactor threads (epoll loops sharing the port via SO_REUSEPORT); default: one per core. [GRIDMON_THREADS]")
    var threads: Int = env("GRIDMON_THREADS").flatMap { Int($0) } ?? Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))

    @Option(help: "Most open agent connections; more are refused. [GRIDMON_MAX_CONNECTIONS]")
    var maxConnections: Int = env("GRIDMON_MAX_CONNECTIONS").flatMap { Int($0) } ?? 16_384

    @Option(help: "Most node streams on one connection. [GRIDMON_MAX_STREAMS]")
    var maxStreams: Int = env("GRIDMON_MAX_STREAMS").flatMap { Int($0) } ?? 1024

    @Option(help: "Largest frame payload accepted, bytes (gRPC's default 4 MiB). [GRIDMON_MAX_FRAME_BYTES]")
    var maxFrameBytes: Int = env("GRIDMON_MAX_FRAME_BYTES").flatMap { Int($0) } ?? 4 * 1024 * 1024

    @Option(help: "Close a connection that sent no Hello within this many ms. [GRIDMON_HANDSHAKE_TIMEOUT_MS]")
    var handshakeTimeoutMs: UInt64 = env("GRIDMON_HANDSHAKE_TIMEOUT_MS").flatMap { UInt64($0) } ?? 10_000

    @Option(help: "Ping a connection silent this long (ms); close it after twice that; 0 = off. [GRIDMON_KEEPALIVE_MS]")
    var keepaliveMs: UInt32 = env("GRIDMON_KEEPALIVE_MS").flatMap { UInt32($0) } ?? 15_000

    @Option(help: "Anomaly threshold of the scorer, 0...1. [GRIDMON_THRESHOLD]")
    var threshold: Double = env("GRIDMON_THRESHOLD").flatMap { Double($0) } ?? 0.95

    @Option(help: "Log level: debug, info, warn, error. [GRIDMON_LOG_LEVEL]")
    var logLevel: String = env("GRIDMON_LOG_LEVEL") ?? "info"

    func validate() throws {
        guard SocketAddress(parsing: listen) != nil else { throw ValidationError("--listen: expected HOST:PORT with an IPv4 host, got '\(listen)'") }
        guard adminListen == "off" || SocketAddress(parsing: adminListen) != nil else {
            throw ValidationError("--admin-listen: expected HOST:PORT or 'off', got '\(adminListen)'")
        }
        guard Log.Level(name: logLevel) != nil else { throw ValidationError("--log-level: expected debug, info, warn or error") }
        guard insecureNoAuth || !tokensFile.isEmpty else {
            throw ValidationError("give --tokens-file FILE, or --insecure-no-auth to accept every agent (demos only)")
        }
        guard (1...256).contains(threads) else { throw ValidationError("--threads must be 1 ... 256") }
        guard maxConnections > 0, maxStreams > 0 else { throw ValidationError("--max-connections and --max-streams must be positive") }
        guard maxFrameBytes >= 64, maxFrameBytes <= Int(UInt32.max) else { throw ValidationError("--max-frame-bytes must be 64 ... 4294967295") }
        guard (0...1).contains(threshold) else { throw ValidationError("--threshold must be within 0...1") }
    }

    func run() throws {
        Log.setLevel(Log.Level(name: logLevel)!)
        var config = ServerConfig()
        config.listen = SocketAddress(parsing: listen)!
        config.adminListen = adminListen == "off" ? nil : SocketAddress(parsing: adminListen)
        config.maxConnections = maxConnections
        config.threads = threads
        config.handshakeTimeoutMs = handshakeTimeoutMs
        config.session.maxStreamsPerConnection = maxStreams
        config.session.maxFrameBytes = maxFrameBytes
        config.session.keepaliveIntervalMs = keepaliveMs
        config.session.serverID = "gridmon-\(getpid())"

        let path = tokensFile
        let loadTokens: (() throws -> Authenticator)? = path.isEmpty ? nil : { try Authenticator(parsing: try Files.readText(path)) }
        let authenticator: Authenticator
        do {
            authenticator = insecureNoAuth ? Authenticator(tokens: [:], insecure: true) : try loadTokens!()
        } catch {
            Log.error("bad_config", ["error": error])
            throw ExitCode(64)
        }
        do {
            let threshold = self.threshold
            let server = Server(config: config, authenticator: authenticator,
                                scorer: { UtilizationScorer(threshold: threshold) }, sink: CountingSink())
            server.reloadTokens = insecureNoAuth ? nil : loadTokens
            try server.run()
        } catch {
            Log.error("cannot_start", ["error": error])
            throw ExitCode(69)
        }
    }
}

StreamServer.main()
