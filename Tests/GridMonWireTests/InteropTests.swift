import Foundation
import Testing
@testable import GridMonWire

/// Interop with an independent implementation: Google's protobuf for Python reads the frames
/// this codec writes, and writes frames this codec must read, field for field.
///
/// Needs `protoc` and a Python with the `protobuf` package, named by GRIDMON_PYTHON
/// (Tools/test sets both up). Without GRIDMON_PYTHON the suite is skipped, unless
/// GRIDMON_REQUIRE_INTEROP=1 (set by Tools/test), where a missing Python fails it.
private let interopPython = ProcessInfo.processInfo.environment["GRIDMON_PYTHON"]
private let interopRequired = ProcessInfo.processInfo.environment["GRIDMON_REQUIRE_INTEROP"] == "1"

@Suite(.enabled(if: interopPython != nil || interopRequired))
struct InteropTests {
    static let python = interopPython
    static let repository = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    let directory: URL

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("gridmon-interop-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        _ = try #require(Self.python, "GRIDMON_REQUIRE_INTEROP=1 but GRIDMON_PYTHON is not set")
        try Self.run("/usr/bin/env", [
            "protoc", "--proto_path=\(Self.repository.path)/Proto", "--python_out=\(directory.path)", "gridmon.proto",
        ])
    }

    @Test func pythonReadsWhatSwiftWrites() throws {
        let encoder = MessageEncoder()
        var stream = Preface.bytes
        for message in WireFixture.messages { encoder.appendFrame(message, to: &stream) }
        let file = directory.appendingPathComponent("swift.bin")
        try Data(stream).write(to: file)
        let output = try Self.run(Self.python!, [Self.script, directory.path, "check", file.path])
        #expect(output.contains("\(WireFixture.messages.count) frames, 0 differences"))
    }

    @Test func swiftReadsWhatPythonWrites() throws {
        let file = directory.appendingPathComponent("python.bin")
        try Self.run(Self.python!, [Self.script, directory.path, "write", file.path])
        let bytes = try [UInt8](Data(contentsOf: file))
        var decoder = FrameDecoder()
        var messages: [Message] = []
        try decoder.decode(bytes: bytes) { messages.append(try Message(payload: $0)) }
        try decoder.finish()
        #expect(messages.count == WireFixture.messages.count)
        for (got, want) in zip(messages, WireFixture.messages) {
            #expect(got == want)
        }
    }

    static var script: String { repository.appendingPathComponent("Tests/GridMonWireTests/Interop/interop.py").path }

    /// Runs a program to completion; throws with its output when it exits non-zero.
    @discardableResult
    static func run(_ program: String, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: program)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        if process.terminationStatus != 0 {
            throw ProcessFailure(command: ([program] + arguments).joined(separator: " "), status: process.terminationStatus, output: output)
        }
        return output
    }

    struct ProcessFailure: Error, CustomStringConvertible {
        let command: String
        let status: Int32
        let output: String
        var description: String { "`\(command)` exited \(status):\n\(output)" }
    }
}
