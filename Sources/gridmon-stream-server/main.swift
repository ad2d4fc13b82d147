// gridmon-stream-server: the GridMon daemon. See `gridmon-stream-server --help`.
//
// Exit codes: 0 clean shutdown (SIGINT/SIGTERM, drained); 64 bad flags or config
// (EX_USAGE); 69 cannot listen or start (EX_UNAVAILABLE).
import ArgumentParser
import GridMonConfig
import GridMonCore
import GridMonDetect
import GridMonNotify
import GridMonForest
import GridMonSink
import GridMonStore
import GridMonPosix
import GridMonServer
import GridMonShipper
import GridMonTLS


#if canImport(Glibc)
import Glibc
#endif

struct StreamServerTool: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gridmon-stream-server",
        abstract: "The GridMon stream server, and tools for its embedded store.",
        version: BuildInfo.versionLine("gridmon-stream-server"),
        subcommands: [StreamServer.self, ExportCommand.self, ConfigCommand.self],
        defaultSubcommand: StreamServer.self)
}

struct StreamServer: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Receives agent streams over TCP, scores every sample, and stores it.",
        discussion: """
            Every option can also be set by the environment variable shown in brackets, or \
            in the TOML file of --config (key: the option's name with _ for -); a flag wins \
            over its variable, a variable over the file. A bad value anywhere is an error \
            naming its key (exit 64). Logs go to stderr, logfmt or JSON (--log-format). \
            SIGINT/SIGTERM: stop accepting, send Goodbye, drain, exit 0. SIGHUP: reload tokens and models.

            Exit codes: 0 clean shutdown, 64 bad flags or config, 69 cannot listen.
            """,
        version: BuildInfo.versionLine("gridmon-stream-server"))


    @Option(help: "Address agents connect to: HOST:PORT, [IPV6]:PORT or :PORT (all IPv4); a host name binds its first address; port 0 = any free port. [GRIDMON_LISTEN]")
    var listen: String = Settings.shared.string("listen", "127.0.0.1:7070")

    @Option(help: "Admin HTTP address (/metrics, /healthz, /readyz, /api/v1/*, the fleet view): HOST:PORT, [IPV6]:PORT, or 'off'. [GRIDMON_ADMIN_LISTEN]")
    var adminListen: String = Settings.shared.string("admin-listen", "127.0.0.1:7071")

    @Option(help: "File of `TOKEN TENANT` lines that authenticate agents; reloaded on SIGHUP. [GRIDMON_TOKENS_FILE]")
    var tokensFile: String = Settings.shared.string("tokens-file", "")

    @Option(help: "File of `TOKEN SCOPE` lines (SCOPE a tenant, or * for all) that the admin API (/api/v1/*) requires as bearer tokens; reloaded on SIGHUP. Without it the API is open. [GRIDMON_ADMIN_TOKENS_FILE]")
    var adminTokensFile: String = Settings.shared.string("admin-tokens-file", "")

    @Flag(inversion: .prefixedNo, help: "Accept every agent without a token (demos only; logged loudly). [GRIDMON_INSECURE_NO_AUTH=1]")
    var insecureNoAuth: Bool = Settings.shared.bool("insecure-no-auth")

    @Option(help: "Reactor threads (epoll loops sharing the port via SO_REUSEPORT); 0 = one per core. [GRIDMON_THREADS]")
    var threads: Int = Settings.shared.int("threads", 0)

    @Option(help: "Most open agent connections; more are refused. [GRIDMON_MAX_CONNECTIONS]")
    var maxConnections: Int = Settings.shared.int("max-connections", 16_384)

    @Option(help: "Most node streams on one connection. [GRIDMON_MAX_STREAMS]")
    var maxStreams: Int = Settings.shared.int("max-streams", 1024)

    @Option(help: "Most nodes the server remembers. [GRIDMON_MAX_NODES]")
    var maxNodes: Int = Settings.shared.int("max-nodes", 1_000_000)

    @Option(help: "Most nodes of one tenant (one leaked token cannot lock other tenants out). [GRIDMON_MAX_NODES_PER_TENANT]")
    var maxNodesPerTenant: Int = Settings.shared.int("max-nodes-per-tenant", 100_000)

    @Option(help: "Forget a node no agent held for this many seconds (its samples stay stored); 0 = never. [GRIDMON_NODE_FORGET_AFTER_SECONDS]")
    var nodeForgetAfterSeconds: Int = Settings.shared.int("node-forget-after-seconds", 3600)

    @Option(help: "A frame must arrive whole within this many ms of its first byte; 0 = off. [GRIDMON_FRAME_TIMEOUT_MS]")
    var frameTimeoutMs: UInt64 = Settings.shared.int("frame-timeout-ms", 30_000)

    @Option(help: "Most connections from one IP address that have not sent a Hello yet. [GRIDMON_MAX_UNAUTHENTICATED_PER_IP]")
    var maxUnauthenticatedPerIp: Int = Settings.shared.int("max-unauthenticated-per-ip", 1024)

    @Option(help: "Largest step a node's seq may take past its highest (larger is refused). [GRIDMON_MAX_SEQ_JUMP]")
    var maxSeqJump: UInt64 = Settings.shared.int("max-seq-jump", 1 << 24)

    @Option(help: "Largest frame payload accepted, bytes (gRPC's default 4 MiB; at most 16 MiB). [GRIDMON_MAX_FRAME_BYTES]")
    var maxFrameBytes: Int = Settings.shared.int("max-frame-bytes", 4 * 1024 * 1024)

    @Option(help: "Close a connection that sent no Hello within this many ms. [GRIDMON_HANDSHAKE_TIMEOUT_MS]")
    var handshakeTimeoutMs: UInt64 = Settings.shared.int("handshake-timeout-ms", 10_000)

    @Option(help: "Ping a connection silent this long (ms); close it after twice that; 0 = off. [GRIDMON_KEEPALIVE_MS]")
    var keepaliveMs: UInt32 = Settings.shared.int("keepalive-ms", 15_000)

    @Option(help: "outbox: keep every accepted sample in the durable on-disk outbox under --data-dir and ack after fsync (the embedded default store). none: keep nothing, ack at once (benchmarks of the server alone). [GRIDMON_STORE]")
    var store: String = Settings.shared.string("store", "outbox")

    @Option(help: "Directory of the outbox (and the notification queue). Default: $STATE_DIRECTORY (systemd's StateDirectory=), else ./gridmon-data. [GRIDMON_DATA_DIR]")
    var dataDir: String = Settings.shared.string("data-dir", environment("STATE_DIRECTORY") ?? "gridmon-data")

    @Option(help: "Wait this long before each outbox fsync to gather more samples into it (PostgreSQL's commit_delay); 0 = fsync as soon as the previous one finished (lowest latency, but every fsync costs CPU: 0 took twice the server CPU of 2 with 10,000 agents). [GRIDMON_COMMIT_DELAY_MS]")
    var commitDelayMs: Int = Settings.shared.int("commit-delay-ms", 2)

    @Option(help: "The outbox keeps at most this many bytes; the oldest segments go first. [GRIDMON_RETENTION_BYTES]")
    var retentionBytes: Int = Settings.shared.int("retention-bytes", 1 << 30)

    @Option(help: "With --influx-url, when undelivered data reaches --retention-bytes: backpressure (stop reading agents; they buffer) or drop-oldest (delete the oldest undelivered segments, counted and logged). [GRIDMON_OUTBOX_FULL_POLICY]")
    var outboxFullPolicy: String = Settings.shared.string("outbox-full-policy", "backpressure")

    @Option(help: "Size at which the outbox starts a new segment file (retention deletes whole segments). [GRIDMON_SEGMENT_BYTES]")
    var segmentBytes: Int = Settings.shared.int("segment-bytes", 64 << 20)

    @Option(help: "The outbox keeps nothing older than this many hours (0 = no age limit). [GRIDMON_RETENTION_HOURS]")
    var retentionHours: Double = Settings.shared.double("retention-hours", 168)

    @Option(help: "InfluxDB base URL, e.g. http://127.0.0.1:8086; empty = the outbox is the store. [GRIDMON_INFLUX_URL]")
    var influxURL: String = Settings.shared.string("influx-url", "")

    @Option(help: "InfluxDB write API: v1 (/write?db=) or v2 (/api/v2/write). [GRIDMON_INFLUX_API]")
    var influxAPI: String = Settings.shared.string("influx-api", "v1")

    @Option(help: "v1: database; {tenant} is replaced by the tenant. [GRIDMON_INFLUX_DB]")
    var influxDB: String = Settings.shared.string("influx-db", "gridmon_{tenant}")

    @Option(help: "v1: retention policy (empty = the database's default). [GRIDMON_INFLUX_RP]")
    var influxRP: String = Settings.shared.string("influx-rp", "")

    @Option(help: "v1: user name. [GRIDMON_INFLUX_USER]")
    var influxUser: String = Settings.shared.string("influx-user", "")

    @Option(help: "v1: password. [GRIDMON_INFLUX_PASSWORD]")
    var influxPassword: String = Settings.shared.string("influx-password", "")

    @Option(help: "v2: organization. [GRIDMON_INFLUX_ORG]")
    var influxOrg: String = Settings.shared.string("influx-org", "gridmon")

    @Option(help: "v2: bucket; {tenant} is replaced by the tenant. [GRIDMON_INFLUX_BUCKET]")
    var influxBucket: String = Settings.shared.string("influx-bucket", "gridmon_{tenant}")

    @Option(help: "v2: API token (sent as Authorization: Token …). [GRIDMON_INFLUX_TOKEN]")
    var influxToken: String = Settings.shared.string("influx-token", "")

    @Flag(inversion: .prefixedNo, help: "v1: create a missing database instead of waiting for it. [GRIDMON_INFLUX_CREATE=1]")
    var influxCreate: Bool = Settings.shared.bool("influx-create")

    @Option(help: "A batch is written after this many ms (±20 % jitter) even when not full. [GRIDMON_INFLUX_FLUSH_MS]")
    var influxFlushMs: Int = Settings.shared.int("influx-flush-ms", 1000)

    @Option(help: "Most lines per write request. [GRIDMON_INFLUX_BATCH_LINES]")
    var influxBatchLines: Int = Settings.shared.int("influx-batch-lines", 5000)

    @Option(help: "Write requests in flight per tenant (InfluxDB parses concurrent writes on several cores). [GRIDMON_INFLUX_CONCURRENCY]")
    var influxConcurrency: Int = Settings.shared.int("influx-concurrency", 2)

    @Flag(inversion: .prefixedNo, help: "Compress write bodies with gzip (worth it across a network, not on loopback). [GRIDMON_INFLUX_GZIP=1]")
    var influxGzip: Bool = Settings.shared.bool("influx-gzip")

    @Option(help: "Longest a write request may take, answer included, before it is retried (ms). [GRIDMON_INFLUX_TIMEOUT_MS]")
    var influxTimeoutMs: Int = Settings.shared.int("influx-timeout-ms", 10_000)

    @Option(help: "temporal: each node's own temporal detector, learnt from its first --node-warmup samples, with incidents (the default). forest: point-wise Isolation Forests (node, tenant or default model; no incidents). static: flag CPU, memory or disk at or above --threshold. [GRIDMON_SCORER]")
    var scorer: String = Settings.shared.string("scorer", "temporal")

    @Option(help: "Model file (gridmon-train output, forest or temporal). temporal scorer: judges nodes still learning (default: they are not judged). forest scorer: the default model (default: the built-in one). [GRIDMON_MODEL]")
    var model: String = Settings.shared.string("model", "")

    @Option(help: "forest scorer: directory of per-tenant models, one TENANT.gmf each; reloaded with --model on SIGHUP. [GRIDMON_TENANT_MODELS]")
    var tenantModels: String = Settings.shared.string("tenant-models", "")

    @Option(help: "Samples of a node before its own detector is fit (0 = no per-node models). [GRIDMON_NODE_WARMUP]")
    var nodeWarmup: Int = Settings.shared.int("node-warmup", 300)

    @Option(help: "Most samples between refits of a node's model (temporal: also refit whenever half of its history is new; forest: refit every this many). [GRIDMON_NODE_REFIT]")
    var nodeRefit: Int = Settings.shared.int("node-refit", 86_400)

    @Option(help: "Rows of history kept per node for its detector (a uniform sample of its samples outside incidents; temporal: at most 4 MiB, fewer rows for a node with many gauges). [GRIDMON_NODE_RESERVOIR]")
    var nodeReservoir: Int = Settings.shared.int("node-reservoir", LiveDetectorOptions().reservoir)

    @Option(help: "Most nodes with their own detector or model; further nodes are not judged (temporal) or keep the tenant/default model (forest). [GRIDMON_NODE_MODELS_MAX]")
    var nodeModelsMax: Int = Settings.shared.int("node-models-max", 10_000)

    @Option(help: "Most metrics one node's detector models (the 8 fixed gauges, then extra gauges in the order first sent). [GRIDMON_NODE_MAX_METRICS]")
    var nodeMaxMetrics: Int = Settings.shared.int("node-max-metrics", 64)

    @Option(help: "temporal: raw score at or above which a node's own detector flags a sample (1 = the mean of its top-3 metrics at their training 99th percentile; stored anomaly_score = raw/(1+raw)). [GRIDMON_NODE_THRESHOLD]")
    var nodeThreshold: Double = Settings.shared.double("node-threshold", LiveDetectorOptions().detector.threshold)

    @Option(help: "temporal: trees per metric in a node's detector (memory and CPU per node grow with it). [GRIDMON_NODE_TREES]")
    var nodeTrees: Int = Settings.shared.int("node-trees", LiveDetectorOptions().detector.trees)

    @Option(help: "temporal: how many of a node's most anomalous metrics are averaged into its score. [GRIDMON_NODE_TOP_K]")
    var nodeTopK: Int = Settings.shared.int("node-top-k", LiveDetectorOptions().detector.topK)

    @Option(help: "temporal: a metric this many training-range widths outside its range flags on its own; 0 = off. [GRIDMON_NODE_RANGE_SCALE]")
    var nodeRangeScale: Double = Settings.shared.double("node-range-scale", (LiveDetectorOptions().detector.rangeScale ?? 0))

    @Option(help: "An incident opens when this many of the last --incident-window samples are flagged. [GRIDMON_INCIDENT_OPEN_AFTER]")
    var incidentOpenAfter: Int = Settings.shared.int("incident-open-after", IncidentRules().openAfter)

    @Option(help: "Samples the open rule looks back over (1...64). [GRIDMON_INCIDENT_WINDOW]")
    var incidentWindow: Int = Settings.shared.int("incident-window", IncidentRules().window)

    @Option(help: "An incident closes after this many unflagged samples in a row. [GRIDMON_INCIDENT_CLOSE_AFTER]")
    var incidentCloseAfter: Int = Settings.shared.int("incident-close-after", IncidentRules().closeAfter)

    @Option(help: "Closed incidents kept for /api/v1/incidents (the store keeps them all). [GRIDMON_RECENT_INCIDENTS]")
    var recentIncidents: Int = Settings.shared.int("recent-incidents", 1000)

    @Option(help: "static scorer: threshold on max(CPU, memory, disk)/100, 0...1. [GRIDMON_THRESHOLD]")
    var threshold: Double = Settings.shared.double("threshold", 0.95)

    @Option(help: "PEM certificate chain: the agent port speaks TLS (with --tls-key); reloaded on SIGHUP. [GRIDMON_TLS_CERT]")
    var tlsCert: String = Settings.shared.string("tls-cert", "")

    @Option(help: "PEM private key of --tls-cert (mode 0600). [GRIDMON_TLS_KEY]")
    var tlsKey: String = Settings.shared.string("tls-key", "")

    @Option(help: "PEM CA file: agents must present a certificate it signed (mutual TLS; the tenant still comes from the token). [GRIDMON_TLS_CLIENT_CA]")
    var tlsClientCa: String = Settings.shared.string("tls-client-ca", "")

    @Flag(inversion: .prefixedNo, help: "With --tls-client-ca: the client certificate's subject CN is the tenant (a Hello may then carry no token; one that does must name the same tenant). [GRIDMON_TLS_TENANT_FROM_CERTIFICATE=1]")
    var tlsTenantFromCertificate: Bool = Settings.shared.bool("tls-tenant-from-certificate")

    @Flag(inversion: .prefixedNo, help: "Serve the admin port over HTTPS with --tls-cert/--tls-key. [GRIDMON_ADMIN_TLS=1]")
    var adminTls: Bool = Settings.shared.bool("admin-tls")

    @Option(help: "Lowest TLS version accepted: 1.2 or 1.3. [GRIDMON_TLS_MIN_VERSION]")
    var tlsMinVersion: String = Settings.shared.string("tls-min-version", "1.2")

    @Option(help: "Log level: debug, info, warn, error. [GRIDMON_LOG_LEVEL]")
    var logLevel: String = Settings.shared.string("log-level", "info")

    @Option(help: "Log line format on stderr: logfmt (key=value) or json (one object per line); times are RFC 3339. [GRIDMON_LOG_FORMAT]")
    var logFormat: String = Settings.shared.string("log-format", "logfmt")

    @Option(help: "TOML file of settings: keys are the flags' names (max_connections = 100; [influx] url = … sets influx-url); a flag or variable wins over it. [GRIDMON_CONFIG]")
    var config: String?

    /// ArgumentParser runs `validate` before it reports unknown options and arguments, so a
    /// misspelt flag was answered with whatever this found missing (`--bogus` → "give
    /// --tokens-file"); the checks run at the start of `run` instead (issue #15, item 4).
    func validate() throws {}

    @OptionGroup(title: "Notifications (Alertmanager, webhooks, Slack)")
    var notify: NotifyOptions

    func run() throws {
        try check()
        Log.setLevel(Log.Level(name: logLevel)!)
        Log.setFormat(Log.Format(name: logFormat)!)
        var config = ServerConfig()
        config.listen = SocketAddress(parsing: listen)!
        config.adminListen = adminListen == "off" ? nil : SocketAddress(parsing: adminListen)
        config.maxConnections = maxConnections
        config.threads = threads > 0 ? threads : max(1, min(256, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))))
        config.handshakeTimeoutMs = handshakeTimeoutMs
        config.session.maxStreamsPerConnection = maxStreams
        config.session.maxFrameBytes = maxFrameBytes
        config.session.keepaliveIntervalMs = keepaliveMs
        config.session.maxSeqJump = maxSeqJump
        config.maxNodes = maxNodes
        config.maxNodesPerTenant = maxNodesPerTenant
        config.nodeForgetAfterNs = UInt64(nodeForgetAfterSeconds) * 1_000_000_000
        config.frameTimeoutMs = frameTimeoutMs
        config.maxUnauthenticatedPerIP = maxUnauthenticatedPerIp
        config.maxConnections = Self.fitDescriptorLimit(maxConnections)
        config.tlsTenantFromCertificate = tlsTenantFromCertificate
        config.session.serverID = "gridmon-\(getpid())"

        let path = tokensFile
        let loadTokens: (() throws -> Authenticator)? = path.isEmpty ? nil : {
            try Self.checkPrivate(path)
            let loaded = try Authenticator(parsing: try Files.readText(path))
            if loaded.tokenCount == 0 { Log.warning("no_tokens", ["file": path, "note": "every agent will be refused"]) }
            return loaded
        }
        let adminPath = adminTokensFile
        let loadAdminTokens: (() throws -> AdminAuth)? = adminPath.isEmpty ? nil : {
            try Self.checkPrivate(adminPath)
            let loaded = try AdminAuth(parsing: try Files.readText(adminPath))
            if loaded.tokenCount == 0 { Log.warning("no_admin_tokens", ["file": adminPath, "note": "every /api/v1 request will be refused"]) }
            return loaded
        }
        let tlsConfig = tlsCert.isEmpty ? nil : TLSServerConfig(
            certificatePath: tlsCert, keyPath: tlsKey, clientCAPath: tlsClientCa.isEmpty ? nil : tlsClientCa,
            minVersion: TLSVersion(rawValue: tlsMinVersion)!)
        let keyPath = tlsKey
        let loadTLS: (() throws -> TLSContext)? = tlsConfig.map { config in {
            try Self.checkPrivate(keyPath)
            return try TLSContext(server: config)
        } }
        let loadAdminTLS: (() throws -> TLSContext)? = !adminTls ? nil : tlsConfig.map { config in {
            var plain = config
            plain.clientCAPath = nil  // scrapers and browsers: the bearer token is the admin API's credential
            try Self.checkPrivate(keyPath)
            return try TLSContext(server: plain)
        } }
        let authenticator: Authenticator
        let adminAuth: AdminAuth
        let tls: TLSContext?
        let adminTLS: TLSContext?
        do {
            // Certificates alone (no tokens file): every token is refused, a certificate's tenant is not.
            authenticator = insecureNoAuth ? Authenticator(tokens: [:], insecure: true) : try loadTokens?() ?? Authenticator(tokens: [:])
            // A server that would refuse every agent is a mistake at start (a reload that
            // empties the file is only warned about: the server keeps running).
            if !insecureNoAuth && !tlsTenantFromCertificate && authenticator.tokenCount == 0 {
                throw ConfigError(description: "\(Settings.shared.origin("tokens-file")): \(tokensFile) holds no tokens (lines of `TOKEN TENANT`): every agent would be refused")
            }
            adminAuth = try loadAdminTokens?() ?? .open
            tls = try loadTLS?()
            adminTLS = try loadAdminTLS?()
        } catch {
            Log.error("bad_config", ["error": error])
            throw ExitCode(64)
        }
        let sink: SampleSink
        if store == "outbox" {
            do {
                let outbox = try OutboxSink(directory: dataDir, commitDelayNs: UInt64(commitDelayMs) * 1_000_000,
                                            retentionBytes: retentionBytes, retentionSeconds: Int(retentionHours * 3600),
                                            segmentBytes: segmentBytes)
                outbox.dropOldestWhenFull = outboxFullPolicy == "drop-oldest"
                let r = outbox.recovery
                Log.info("outbox_opened", ["dir": Files.absolute(dataDir), "segments": r.segments, "records": r.records,
                                           "nodes": outbox.restoredNodes.count, "truncated_bytes": r.truncatedBytes,
                                           "quarantined": r.quarantined.count])
                for item in r.quarantined { Log.error("outbox_segment_quarantined", ["detail": item]) }
                if !influxURL.isEmpty {
                    InfluxWriter.globalInit()
                    let api: InfluxTarget.API = influxAPI == "v1"
                        ? .v1(database: influxDB, retentionPolicy: influxRP, username: influxUser, password: influxPassword)
                        : .v2(org: influxOrg, bucket: influxBucket, token: influxToken)
                    var target = InfluxTarget(baseURL: influxURL, api: api)
                    target.gzip = influxGzip
                    target.totalTimeoutMs = influxTimeoutMs
                    target.connectTimeoutMs = min(2_000, influxTimeoutMs)
                    outbox.shipper = OutboxShipper(outbox: outbox.outbox, target: target,
                                                   directory: dataDir, createContainers: influxCreate, batchLines: influxBatchLines,
                                                   flushIntervalNs: UInt64(influxFlushMs) * 1_000_000, concurrency: influxConcurrency)
                    Log.info("influx_target", ["url": influxURL, "api": influxAPI, "gzip": influxGzip,
                                               "container": influxAPI == "v1" ? influxDB : influxBucket])
                }
                sink = outbox
            } catch {
                Log.error("cannot_start", ["error": error, "dir": dataDir])
                throw ExitCode(69)
            }
        } else {
            sink = CountingSink()
        }
        // Notifications (issue #14): their queue lives in the data directory, whose lock the
        // outbox sink holds by now.
        var notifier: Notifier?
        do {
            if let options = try notify.options(adminListen: adminListen) {
                guard store == "outbox" else { throw ConfigError(description: "notifications need --store outbox (their queue lives in --data-dir)") }
                guard scorer == "temporal" else { throw ConfigError(description: "notifications need --scorer temporal (incidents come from it)") }
                InfluxWriter.globalInit()
                notifier = try Notifier(directory: dataDir + "/notifications", options: options)
                Log.info("notifications", ["receivers": options.receivers.map { "\($0.safeName)\($0.tenant.map { " (\($0))" } ?? "")" }.joined(separator: ", "),
                                           "resolve_hold_s": Double(options.resolveHoldNs) / 1e9, "signed": options.webhookSecret != nil])
            }
        } catch {
            Log.error("bad_config", ["error": error])
            throw ExitCode(64)
        }
        var registry: ModelRegistry?
        var learner: NodeLearner?
        var bank: DetectorBank?
        let makeScorer: () -> Scorer
        if scorer == "temporal" {
            let prior: Detector?
            do { prior = try loadPrior() } catch {
                Log.error("bad_config", ["error": error])
                throw ExitCode(64)
            }
            var options = LiveDetectorOptions()
            options.warmup = nodeWarmup
            options.refitEvery = nodeRefit
            options.reservoir = nodeReservoir
            options.maxMetrics = nodeMaxMetrics
            options.incidents = incidentRules
            options.detector.threshold = nodeThreshold
            options.detector.trees = nodeTrees
            options.detector.topK = nodeTopK
            options.detector.rangeScale = nodeRangeScale > 0 ? nodeRangeScale : nil
            let detectors = DetectorBank(options: options, prior: prior, maxNodes: nodeModelsMax,
                                         incidents: IncidentBook(maxRecent: recentIncidents),
                                         firstID: UInt64(max(0, Clock.unixNanos() / 1000)))
            bank = detectors
            let alerts = notifier
            makeScorer = { DetectorScorer(bank: detectors, notifier: alerts) }
            Log.info("detection", ["scorer": "temporal", "learning": nodeWarmup > 0 ? "\(nodeWarmup) samples" : "off",
                                   "while_learning": model.isEmpty ? "not judged" : "judged by \(model)",
                                   "incident": "\(incidentOpenAfter) of \(incidentWindow) flagged opens, \(incidentCloseAfter) quiet closes"])
        } else if scorer == "forest" {
            let (fallback, tenants): (IsolationForest, [String: IsolationForest])
            do { (fallback, tenants) = try loadModels() } catch {
                Log.error("bad_config", ["error": error])
                throw ExitCode(64)
            }
            let models = ModelRegistry(default: fallback, tenants: tenants, maxNodeModels: nodeModelsMax)
            registry = models
            if nodeWarmup > 0 {
                var options = NodeLearner.Options()
                options.warmup = nodeWarmup
                options.refitEvery = nodeRefit
                options.reservoirSize = nodeReservoir
                learner = NodeLearner(options: options, registry: models)
            }
            let nodeLearner = learner
            makeScorer = { ForestScorer(registry: models, learner: nodeLearner) }
            Log.info("models_loaded", ["default": model.isEmpty ? "built-in" : model, "tenant_models": tenants.count,
                                       "per_node": nodeWarmup > 0 ? "after \(nodeWarmup) samples" : "off"])
        } else {
            let threshold = self.threshold
            makeScorer = { UtilizationScorer(threshold: threshold) }
        }
        do {
            let server = Server(config: config, authenticator: authenticator, scorer: makeScorer, sink: sink)
            server.reloadTokens = insecureNoAuth ? nil : loadTokens
            server.adminAuth = adminAuth
            server.reloadAdminTokens = loadAdminTokens
            server.tls = tls
            server.reloadTLS = loadTLS
            server.adminTLS = adminTLS
            server.reloadAdminTLS = loadAdminTLS
            server.models = registry
            server.learner = learner
            server.detectors = bank
            server.notifier = notifier
            if let bank {
                server.reloadModels = { bank.replacePrior(try self.loadPrior()) }
            }
            if let registry {
                server.reloadModels = {
                    let (fallback, tenants) = try self.loadModels()
                    registry.replace(default: fallback, tenants: tenants)
                }
            }
            try server.run()
        } catch {
            Log.error("cannot_start", ["error": error])
            throw ExitCode(69)
        }
    }
}

extension StreamServer {
    struct ConfigError: Error, CustomStringConvertible {
        let description: String
    }

    /// Refuses a tokens file other users can read or write (as ssh refuses such keys): the
    /// tokens are the only thing between anyone and every tenant's data (issue #10).
    static func checkPrivate(_ path: String) throws {
        var info = stat()
        guard stat(path, &info) == 0 else { throw SyscallError(call: "stat(\(path))", errno: errno) }
        guard info.st_mode & 0o007 == 0 else {
            throw ConfigError(description: "\(path) is accessible by other users (mode \(String(info.st_mode & 0o777, radix: 8))); chmod 600 it")
        }
    }

    /// Raises the soft descriptor limit to the hard one, and lowers `maxConnections` to what
    /// fits under it with room for files and the admin port: past the limit, accept fails with
    /// EMFILE and the reactors would spin (issue #10, defect 6).
    static func fitDescriptorLimit(_ maxConnections: Int) -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return maxConnections }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        let reserve = 64  // outbox segments, admin connections, the listeners, signalfd, epoll
        let fits = max(1, Int(min(limit.rlim_cur, rlim_t(Int.max))) - reserve)
        if maxConnections > fits {
            Log.warning("max_connections_lowered", ["asked": maxConnections, "now": fits, "open_files_limit": limit.rlim_cur])
            return fits
        }
        return maxConnections
    }
}

struct ModelLoadError: Error, CustomStringConvertible {
    let description: String
}

extension StreamServer {
    var incidentRules: IncidentRules {
        var rules = IncidentRules()
        rules.openAfter = incidentOpenAfter
        rules.window = incidentWindow
        rules.closeAfter = incidentCloseAfter
        return rules
    }

    /// The temporal scorer's configured model (--model, either kind), or nil.
    func loadPrior() throws -> Detector? {
        guard !model.isEmpty else { return nil }
        let detector: Detector
        do { detector = try Detector.decode(try Files.read(model)) } catch {
            throw ModelLoadError(description: "\(model): \(error)")
        }
        try Self.checkColumns(detector, path: model)
        return detector
    }

    /// The fixed gauges of every sample, by the names models and stored points use.
    static let fixedGauges = ["cpu", "memory", "disk", "load1", "net_rx", "net_tx", "disk_read", "disk_write"]

    /// Refuses a model none of whose columns is a fixed gauge: every sample then read as
    /// missing values and got the same score (a model fit on another CSV's columns flagged
    /// everything; issue #15). Columns beyond the fixed gauges are read from extra gauges.
    static func checkColumns(_ detector: Detector, path: String) throws {
        let columns = detector.inputColumns
        guard columns.contains(where: fixedGauges.contains) else {
            throw ModelLoadError(description: "\(path) was trained on columns \(columns.joined(separator: ", ")), none of which the server "
                                 + "receives as a gauge (\(fixedGauges.joined(separator: ", "))); train on a CSV with those column names "
                                 + "(gridmon-train fit --features cpu,memory,disk)")
        }
    }

    /// The default model (file or built-in) and the tenant models of --tenant-models.
    func loadModels() throws -> (IsolationForest, [String: IsolationForest]) {
        func load(_ path: String) throws -> IsolationForest {
            let detector: Detector
            do { detector = try Detector.decode(try Files.read(path)) } catch {
                throw ModelLoadError(description: "\(path): \(error)")
            }
            guard case .forest(let forest) = detector else {
                throw ModelLoadError(description: "\(path) is a temporal detector: it judges time series, use it with --scorer temporal (the default)")
            }
            try Self.checkColumns(detector, path: path)
            return forest
        }
        let fallback = model.isEmpty ? DefaultModel.make() : try load(model)
        var tenants: [String: IsolationForest] = [:]
        if !tenantModels.isEmpty {
            for name in try Files.list(tenantModels) where name.hasSuffix(".gmf") {
                tenants[String(name.dropLast(4))] = try load(tenantModels + "/" + name)
            }
        }
        return (fallback, tenants)
    }
}

Settings.shared.load(arguments: CommandLine.arguments, environment: processEnvironment()) { try Files.readText($0, maxBytes: 1 << 20) }
StreamServerTool.main()
