// swift-tools-version:6.0
//
// The libFuzzer harness for GridMon's frame decoder and message codec.
// A package of its own because it only links with sanitizer and libFuzzer flags
// (see Tools/fuzz-frames); a plain `swift build` of GridMon never sees it.
import PackageDescription

let package = Package(
    name: "GridMonFuzz",
    dependencies: [.package(name: "GridMon", path: "../..")],
    targets: [
        .target(name: "CLibFuzzer"),
        .executableTarget(
            name: "fuzz-frames",
            dependencies: [.product(name: "GridMonWire", package: "GridMon"), "CLibFuzzer"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
