// swift-tools-version:6.0
//
// GridMon: fleet telemetry with real-time anomaly detection.
//
// Modules by role:
//   CProtobufC     system library: the protobuf-c runtime (libprotobuf-c-dev)
//   CGridMonProto  C: protobuf-c code generated from Proto/ by Tools/gen-proto (committed, never edited)
//   GridMonWire    pure Swift core: message model, frame codec, protobuf-c bridge; no syscalls
//   gridmon-bench  release-build benchmarks printed by Tools/bench-*
import PackageDescription

let package = Package(
    name: "GridMon",
    products: [
        .library(name: "GridMonWire", targets: ["GridMonWire"]),
        .executable(name: "gridmon-bench", targets: ["gridmon-bench"]),
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
        .target(
            name: "GridMonWire",
            dependencies: ["CGridMonProto"]
        ),
        .executableTarget(
            name: "gridmon-bench",
            dependencies: ["GridMonWire", "CGridMonProto"]
        ),
        .testTarget(
            name: "GridMonWireTests",
            dependencies: ["GridMonWire"],
            exclude: ["Interop"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
