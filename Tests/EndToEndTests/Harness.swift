import Foundation
import Glibc
import GridMonPosix
import GridMonWire
import Testing

/// The real `gridmon-stream-server` binary, started on a free loopback port for one test.
final class ServerProcess: @unchecked Sendable {  // logText is guarded by logLock
    let process = Process()
    let address: SocketAddress
    /// The admin HTTP port, when the server has one.
    private(set) var adminAddress: SocketAddress?
    private let stderrPipe = Pipe()
    private let logLock = NSLock()
    private var logText = ""

    /// Built next to the test bundle by `swift build --build-tests`.
    static var binary: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
            .appendingPathComponent("gridmon-stream-server")
    }

    /// The outbox directory (a fresh temporary one unless a test passes its own, to restart on it).
    let dataDir: String
    private let ownsDataDir: Bool

    /// - Parameter wrapper: a command the server runs under (e.g. `prlimit … --`).
    init(_ arguments: [String] = ["--insecure-no-auth"], environment: [String: String] = [:], listen: String = "127.0.0.1:0",
         dataDir: String? = nil, wrapper: [String] = []) throws {
        self.dataDir = dataDir ?? FileManager.default.temporaryDirectory.appendingPathComponent("gridmon-data-\(UUID())").path
        ownsDataDir = dataDir == nil
        let serverArguments = ["--listen", listen, "--admin-listen", "127.0.0.1:0", "--log-level", "debug", "--data-dir", self.dataDir] + arguments
        if let tool = wrapper.first {
            process.executableURL = URL(fileURLWithPath: tool)
            process.arguments = Array(wrapper.dropFirst()) + [Self.binary.path] + serverArguments
        } else {
            process.executableURL = Self.binary
            process.arguments = serverArguments
        }
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.standardError = stderrPipe
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        // The server logs `event=listening address=127.0.0.1:PORT` once bound.
        let handle = stderrPipe.fileHandleForReading
        var found: SocketAddress?
        let deadline = Date().addingTimeInterval(10)
        while found == nil && Date() < deadline {
            let data = handle.availableData
            if data.isEmpty { break }
            logText += String(decoding: data, as: UTF8.self)
            // logfmt, or JSON with --log-format json.
            if let range = logText.range(of: "event=listening address=") ?? logText.range(of: "\"event\":\"listening\",\"address\":\"") {
                let rest = logText[range.upperBound...].prefix { $0 != " " && $0 != "\n" && $0 != "\"" }
                found = SocketAddress(parsing: String(rest))
            }
        }
        guard let found else { process.terminate(); throw HarnessError("server did not start:\n\(logText)") }
        address = found
        if let range = logText.range(of: "event=admin_listening address=") ?? logText.range(of: "\"event\":\"admin_listening\",\"address\":\"") {
            adminAddress = SocketAddress(parsing: String(logText[range.upperBound...].prefix { $0 != " " && $0 != "\n" && $0 != "\"" }))
        }
        handle.readabilityHandler = { [weak self] handle in
            let text = String(decoding: handle.availableData, as: UTF8.self)
            guard let self else { return }
            self.logLock.lock(); self.logText += text; self.logLock.unlock()
        }
    }

    var log: String { logLock.lock(); defer { logLock.unlock() }; return logText }

    /// Whether the server logged `text` within `timeout` (its stderr is read asynchronously).
    func logContains(_ text: String, timeout: TimeInterval = 5) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while !log.contains(text) {
            if Date() > deadline { return false }
            usleep(10_000)
        }
        return true
    }

    /// Sends `signal` and waits (bounded) for the exit status.
    func stop(signal: Int32 = SIGTERM, timeout: TimeInterval = 10) -> Int32? {
        kill(process.processIdentifier, signal)
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning { process.terminate(); return nil }
        return process.terminationStatus
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
        stderrPipe.fileHandleForReading.readabilityHandler = nil
        if ownsDataDir { try? FileManager.default.removeItem(atPath: dataDir) }
    }
}

struct HarnessError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A blocking test client over a real TCP socket: writes bytes, reads decoded messages.
final class TestClient {
    let fd: Int32
    private var decoder = FrameDecoder()
    private var inbox: [Message] = []
    private(set) var closedByPeer = false
    let encoder = MessageEncoder()

    init(_ address: SocketAddress, sendPreface: Bool = true, decodeFrames: Bool = true) throws {
        fd = try Socket.connect(address)
        var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        guard poll(&pfd, 1, 5000) == 1, Socket.pendingError(fd) == nil else { throw HarnessError("connect failed") }
        if sendPreface { try send(Preface.bytes) }
    }

    deinit { Socket.close(fd) }

    /// Raw bytes until the peer closes (bounded by `timeout` per read).
    func readRaw(timeout: Int32 = 5000) throws -> [UInt8] {
        var bytes: [UInt8] = []
        while true {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, timeout) == 1 else { return bytes }
            var buffer = [UInt8](repeating: 0, count: 65536)
            let result = try? buffer.withUnsafeMutableBytes { try Socket.read(fd, into: $0) }
            switch result {
            case .done(let n)? where n > 0: bytes += buffer[..<n]
            case .wouldBlock?: continue
            default: return bytes
            }
        }
    }

    func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let result = try bytes.withUnsafeBytes { try Socket.write(fd, UnsafeRawBufferPointer(rebasing: $0[offset...])) }
            switch result {
            case .done(let n): offset += n
            case .wouldBlock:
                var pfd = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                guard poll(&pfd, 1, 5000) == 1 else { throw HarnessError("send timed out") }
            }
        }
    }

    func send(_ messages: Message...) throws {
        var bytes: [UInt8] = []
        for message in messages { encoder.appendFrame(message, to: &bytes) }
        try send(bytes)
    }

    /// The next message from the server, or nil when the server closed (or `timeout` passed).
    func receive(timeout: Int32 = 5000) throws -> Message? {
        while inbox.isEmpty && !closedByPeer {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, timeout) == 1 else { return nil }
            var buffer = [UInt8](repeating: 0, count: 65536)
            let result = try? buffer.withUnsafeMutableBytes { try Socket.read(fd, into: $0) }
            switch result {
            case .done(let n)? where n > 0:
                try decoder.decode(bytes: buffer[..<n]) { inbox.append(try Message(payload: $0)) }
            case .wouldBlock?: continue
            default: closedByPeer = true  // EOF or ECONNRESET
            }
        }
        return inbox.isEmpty ? nil : inbox.removeFirst()
    }

    /// Reads until the server closes; returns everything it sent before.
    func drainUntilClosed(timeout: Int32 = 5000) throws -> [Message] {
        var messages: [Message] = []
        while let message = try receive(timeout: timeout) { messages.append(message) }
        return messages
    }

    func hello(node: String, stream: UInt32, token: String = "") throws -> Welcome {
        try send(.hello(Hello(nodeID: node, agentVersion: "test", authToken: token, streamID: stream)))
        guard case .welcome(let welcome)? = try receive() else { throw HarnessError("no Welcome") }
        return welcome
    }
}

func sample(_ seq: UInt64, cpu: Double = 10) -> Sample {
    Sample(seq: seq, timestampNs: 1_700_000_000_000_000_000 + Int64(seq) * 1_000_000_000, cpuPercent: cpu,
           memoryPercent: 40, diskPercent: 50)
}

func batch(_ stream: UInt32, _ seqs: ClosedRange<UInt64>, cpu: Double = 10) -> Message {
    .samples(SampleBatch(streamID: stream, samples: seqs.map { sample($0, cpu: cpu) }))
}

/// A protobuf base-128 varint, for hand-made payloads of shapes no encoder writes.
func protobufVarint(_ value: UInt64) -> [UInt8] {
    var value = value, out: [UInt8] = []
    while value >= 0x80 { out.append(UInt8(value & 0x7F) | 0x80); value >>= 7 }
    return out + [UInt8(value)]
}

/// A length-delimited protobuf field (wire type 2): tag, length, body.
func protobufField(_ number: Int, _ body: [UInt8]) -> [UInt8] {
    protobufVarint(UInt64(number << 3 | 2)) + protobufVarint(UInt64(body.count)) + body
}

/// Builds a raw frame around arbitrary payload bytes.
func rawFrame(_ payload: [UInt8], flag: UInt8 = 0) -> [UInt8] {
    let n = UInt32(payload.count)
    return [flag, UInt8(n >> 24), UInt8(n >> 16 & 0xff), UInt8(n >> 8 & 0xff), UInt8(n & 0xff)] + payload
}

/// One HTTP/1.1 request over a real socket; reads until the server closes.
func httpRequest(_ address: SocketAddress, _ raw: String) throws -> (status: Int, body: String) {
    let client = try TestClient(address, sendPreface: false, decodeFrames: false)
    try client.send(Array(raw.utf8))
    let text = String(decoding: try client.readRaw(), as: UTF8.self)
    guard let statusText = text.split(separator: " ").dropFirst().first, let status = Int(statusText) else {
        throw HarnessError("not an HTTP response: \(text)")
    }
    let body = text.range(of: "\r\n\r\n").map { String(text[$0.upperBound...]) } ?? ""
    return (status, body)
}

func httpGet(_ address: SocketAddress, _ path: String) throws -> (status: Int, body: String) {
    try httpRequest(address, "GET \(path) HTTP/1.1\r\nHost: test\r\n\r\n")
}

/// The value of an unlabelled Prometheus sample line `name value`, or of `name{labels} value`.
func metric(_ text: String, _ name: String) -> Double? {
    for line in text.split(separator: "\n") where line.hasPrefix(name + " ") {
        return Double(line.split(separator: " ").last!)
    }
    return nil
}

/// Runs a GridMon binary from the build folder to completion (bounded by `timeout`).
/// Output goes through temp files, so a chatty child never blocks on a full pipe.
func runBinary(_ name: String, _ arguments: [String], environment: [String: String] = [:], timeout: TimeInterval = 60) throws -> (status: Int32, stdout: String, stderr: String) {
    let directory = FileManager.default.temporaryDirectory
    let outURL = directory.appendingPathComponent("gridmon-\(UUID()).out")
    let errURL = directory.appendingPathComponent("gridmon-\(UUID()).err")
    _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
    _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
    defer {
        try? FileManager.default.removeItem(at: outURL)
        try? FileManager.default.removeItem(at: errURL)
    }
    let process = Process()
    process.executableURL = ServerProcess.binary.deletingLastPathComponent().appendingPathComponent(name)
    process.arguments = arguments
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    process.standardOutput = try FileHandle(forWritingTo: outURL)
    process.standardError = try FileHandle(forWritingTo: errURL)
    try process.run()
    let deadline = Date().addingTimeInterval(timeout)
    while process.isRunning && Date() < deadline { usleep(10_000) }
    if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    process.waitUntilExit()
    return (process.terminationStatus, try String(contentsOf: outURL, encoding: .utf8), try String(contentsOf: errURL, encoding: .utf8))
}

/// A loopback port held by a bound socket that does not listen: connections to it are
/// refused, and no other test's server can take it (a port that was merely free a moment ago
/// was once taken by another suite's influxd, which then accepted writes meant for a target
/// that was down). `release()` frees it for the server that comes up there.
final class ReservedPort {
    let port: UInt16
    private var fd: Int32

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        let named = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        guard bound == 0, named == 0 else { close(fd); throw HarnessError("cannot reserve a port") }
        port = UInt16(bigEndian: address.sin_port)
        self.fd = fd
    }

    func release() {
        if fd >= 0 { close(fd); fd = -1 }
    }

    deinit { release() }
}

/// A loopback port that was free a moment ago (for a server that must come back on the same port).
func freeLoopbackPort() throws -> UInt16 {
    let fd = try Socket.listen(SocketAddress(host: "127.0.0.1", port: 0))
    defer { Socket.close(fd) }
    return try Socket.localAddress(fd).port
}

/// Writes a tokens file as an operator must: readable by its owner only (mode 0600; the
/// server refuses a tokens file other users can read).
func writeSecret(_ text: String, to path: String) throws {
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    guard chmod(path, 0o600) == 0 else { throw HarnessError("chmod \(path) failed") }
}

/// A fresh path under the temporary directory (not created).
func tempPath(_ name: String) -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("gridmon-\(name)-\(UUID())").path
}

/// Reads acks until one covers `last` (or the server goes quiet for `timeout` ms); returns the
/// highest durable seq seen.
func ackedThrough(_ client: TestClient, _ last: UInt64, timeout: Int32 = 5000) throws -> UInt64 {
    var durable: UInt64 = 0
    while durable < last, let message = try client.receive(timeout: timeout) {
        if case .ack(let ack) = message { durable = ack.durableSeq }
    }
    return durable
}

/// The first `Error` among `messages`.
func firstError(_ messages: [Message]) -> ErrorMessage? {
    for message in messages { if case .error(let e) = message { return e } }
    return nil
}
