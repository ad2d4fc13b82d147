// swift-tools-version:6.1
//
// The gRPC peer of Tools/bench-server (issue #17, item 4): a grpc-swift-2 server and load
// client carrying the same GridMon messages (the `gridmon.v1.Frame` payloads of GridMon's own
// codec, `GridMonWire`) over gRPC's HTTP/2 transport, so that GridMon's epoll server and a
// gRPC server can be measured side by side in one run. Its own package, outside the
// repository's: the test command never builds it (gRPC, SwiftNIO and their TLS stack take
// minutes to compile).
//
//   swift build -c release --package-path Tools/grpc-peer     (Tools/bench-server --peer does it)
import PackageDescription

let package = Package(
    name: "GridMonGRPCPeer",
    dependencies: [
        .package(name: "GridMon", path: "../.."),
        .package(url: "https://github.com/grpc/grpc-swift-2", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport", from: "2.9.2"),
    ],
    targets: [
        .executableTarget(
            name: "grpc-peer",
            dependencies: [
                .product(name: "GridMonWire", package: "GridMon"),
                .product(name: "GRPCCore", package: "grpc-swift-2"),
                .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
            ]
        )
    ]
)
