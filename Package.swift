// swift-tools-version:6.0
//
// GridMon: fleet telemetry with real-time anomaly detection.
//
// Modules by role:
//   CProtobufC     system library: the protobuf-c runtime (libprotobuf-c-dev)
//   CGridMonProto  C: protobuf-c code generated from Proto/ by Tools/gen-proto (committed, never edited)
//   CGridMonCRC32C C shim: the CPU's CRC-32C instruction (SSE4.2, arm64 CRC32), which Swift cannot reach
//   GridMonCore    pure helpers shared by the cores: CRC-32C, a seedable RNG, flag/variable value parsers,
//                  a latency histogram, a bounded FIFO
//   GridMonForest  pure Swift: the Isolation Forest (fit, score), its model file, CSV, quality metrics
//   GridMonStore   pure Swift: InfluxDB line protocol encoder, the outbox's record format
//   CCurl, CZlib   system libraries: libcurl (the InfluxDB writer's HTTP), zlib (gzip bodies)
//   COpenSSL       system library: OpenSSL 3 (libssl-dev), for TLS on the agent link
//   GridMonTLS     the edge of TLS: contexts from certificate files, non-blocking sessions on a socket
//   GridMonSink    the edge towards InfluxDB: line protocol over libcurl, v1 and v2 write APIs
//   GridMonOutbox  the edge of storage: the durable outbox (segment files, group commit, recovery)
//   GridMonShipper the outbox's delivery to InfluxDB: per-tenant lanes, batching, retries, the target probe
//   GridMonWire    pure Swift core: message model, frame codec, protobuf-c bridge; no syscalls
//   CGridMonPosix  C shim: epoll/eventfd/timerfd/signalfd headers, accept4 and sync_file_range, which Glibc's module lacks
//   GridMonPosix   the edge: one syscall wrapper, sockets, clocks, the epoll reactor, logs, process metrics
//   GridMonConfig  where settings come from: flag > GRIDMON_… variable > TOML file (TOMLKit) > default
//   GridMonNotify  incidents to people: alerts (flapping folded), a durable queue, Alertmanager, webhooks, Slack
//   GridMonDetect  live detection: each node's temporal detector, its history and refits, incidents
//   GridMonServer  the server's protocol logic (sessions, nodes, auth, scoring hook, stats) and its epoll edge
//   GridMonAgent   the agent: /proc and textfile parsers, the buffer's record format (pure); collectors,
//                  the disk buffer, the connection loop (edge)
//   GridMonFlood   the load generator's engine: multiplexed streams, pacing, reconnects, HDR latency
//   gridmon-stream-server, gridmon-flood  the command lines
//   gridmon-bench  release-build benchmarks printed by Tools/bench-*
import PackageDescription

let package = Package(
    name: "GridMon",
    products: [
        .library(name: "GridMonWire", targets: ["GridMonWire"]),
        .library(name: "GridMonPosix", targets: ["GridMonPosix"]),
        .executable(name: "gridmon-stream-server", targets: ["gridmon-stream-server"]),
        .executable(name: "gridmon-flood", targets: ["gridmon-flood"]),
        .executable(name: "gridmon-agent", targets: ["gridmon-agent"]),
        .executable(name: "gridmon-train", targets: ["gridmon-train"]),
        .executable(name: "gridmon-bench", targets: ["gridmon-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CProtobufC",
            pkgConfig: "libprotobuf-c",
            providers: [.apt(["libprotobuf-c-dev"])]
        ),
        .target(
            name: "CGridMonProto",
            dependencies: ["CProtobufC"]
        ),
        .target(name: "CGridMonCRC32C"),
        .target(name: "GridMonCore", dependencies: ["CGridMonCRC32C"]),
        .target(
            name: "GridMonForest",
            dependencies: ["GridMonCore"]
        ),
        .target(name: "GridMonStore", dependencies: ["GridMonCore", "GridMonWire"]),
        .target(
            name: "GridMonWire",
            dependencies: ["CGridMonProto"]
        ),
        .target(name: "CGridMonPosix"),
        .target(
            name: "GridMonPosix",
            dependencies: ["CGridMonPosix", "GridMonCore"]
        ),
        .systemLibrary(
            name: "CCurl",
            pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev"])]
        ),
        .systemLibrary(
            name: "COpenSSL",
            pkgConfig: "openssl",
            providers: [.apt(["libssl-dev"])]
        ),
        .target(
            name: "GridMonTLS",
            dependencies: ["COpenSSL", "GridMonPosix"]
        ),
        .systemLibrary(
            name: "CZlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        .target(
            name: "GridMonSink",
            dependencies: ["CCurl", "CZlib", "GridMonPosix"]
        ),
        .target(
            name: "GridMonOutbox",
            dependencies: ["GridMonStore", "GridMonPosix"]
        ),
        .target(
            name: "GridMonShipper",
            dependencies: ["GridMonCore", "GridMonOutbox", "GridMonPosix", "GridMonSink", "GridMonStore"]
        ),
        .target(
            name: "GridMonDetect",
            dependencies: ["GridMonCore", "GridMonForest", "GridMonStore", "GridMonWire", "GridMonPosix"]
        ),
        .target(
            name: "GridMonNotify",
            dependencies: ["GridMonCore", "GridMonDetect", "GridMonOutbox", "GridMonPosix", "CCurl", "COpenSSL"]
        ),
        .target(
            name: "GridMonServer",
            dependencies: ["GridMonDetect", "GridMonWire", "GridMonPosix", "GridMonForest", "GridMonCore", "GridMonStore", "GridMonOutbox", "GridMonShipper", "GridMonSink", "GridMonTLS", "GridMonNotify"]
        ),
        .target(
            name: "GridMonConfig",
            dependencies: ["GridMonCore", .product(name: "TOMLKit", package: "TOMLKit")]
        ),
        .executableTarget(
            name: "gridmon-stream-server",
            dependencies: ["GridMonConfig", "GridMonServer", "GridMonShipper", "GridMonPosix", "GridMonForest", "GridMonStore", "GridMonSink", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            exclude: ["Models"]
        ),
        .target(
            name: "GridMonFlood",
            dependencies: ["GridMonCore", "GridMonWire", "GridMonPosix", "GridMonForest", "GridMonTLS", .product(name: "Histogram", package: "hdrhistogram-swift")]
        ),
        .executableTarget(
            name: "gridmon-flood",
            dependencies: ["GridMonConfig", "GridMonCore", "GridMonFlood", "GridMonPosix", "GridMonTLS", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .target(
            name: "GridMonAgent",
            dependencies: ["GridMonCore", "GridMonWire", "GridMonPosix", "CGridMonPosix", "GridMonTLS"]
        ),
        .executableTarget(
            name: "gridmon-agent",
            dependencies: ["GridMonConfig", "GridMonAgent", "GridMonCore", "GridMonPosix", "GridMonWire", "GridMonTLS", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .executableTarget(
            name: "gridmon-train",
            dependencies: ["GridMonConfig", "GridMonCore", "GridMonForest", "GridMonPosix", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .executableTarget(
            name: "gridmon-bench",
            dependencies: ["GridMonCore", "GridMonWire", "CGridMonProto", "GridMonForest", "GridMonDetect", "GridMonPosix", "GridMonFlood"]
        ),
        .testTarget(
            name: "GridMonCoreTests",
            dependencies: ["GridMonCore"]
        ),
        .testTarget(
            name: "GridMonWireTests",
            dependencies: ["GridMonWire"],
            exclude: ["Interop"]
        ),
        .testTarget(
            name: "EndToEndTests",
            dependencies: ["GridMonWire", "GridMonPosix", "GridMonServer", "GridMonForest", "GridMonOutbox", "GridMonStore"]
        ),
        .testTarget(
            name: "GridMonServerTests",
            dependencies: ["GridMonServer", "GridMonWire", "GridMonDetect", "GridMonForest", "GridMonStore"]
        ),
        .testTarget(
            name: "GridMonForestTests",
            dependencies: ["GridMonForest", "GridMonCore"],
            exclude: ["Sklearn", "Fixtures"]
        ),
        .testTarget(
            name: "GridMonDetectTests",
            dependencies: ["GridMonDetect", "GridMonForest", "GridMonWire", "GridMonCore"]
        ),
        .testTarget(
            name: "GridMonFloodTests",
            dependencies: ["GridMonFlood"]
        ),
        .testTarget(
            name: "GridMonAgentTests",
            dependencies: ["GridMonAgent", "GridMonWire", "GridMonPosix"]
        ),
        .testTarget(
            name: "GridMonStoreTests",
            dependencies: ["GridMonStore", "GridMonWire", "GridMonCore"]
        ),
        .testTarget(
            name: "GridMonOutboxTests",
            dependencies: ["GridMonOutbox", "GridMonStore", "GridMonPosix"]
        ),
        .testTarget(
            name: "GridMonNotifyTests",
            dependencies: ["GridMonNotify", "GridMonDetect", "GridMonCore"]
        ),
        .testTarget(
            name: "GridMonShipperTests",
            dependencies: ["GridMonShipper"]
        ),
        .testTarget(
            name: "GridMonSinkTests",
            dependencies: ["GridMonSink"]
        ),
        .testTarget(
            name: "GridMonConfigTests",
            dependencies: ["GridMonConfig"]
        ),
        .testTarget(
            name: "GridMonPosixTests",
            dependencies: ["GridMonPosix"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
