import Foundation
import Glibc
import GridMonPosix

/// The real `gridmon-agent` binary, its stderr kept in a file the test can read.
final class AgentProcess {
    let process = Process()
    let logPath = tempPath("agent-log")

    init(_ arguments: [String], environment: [String: String] = [:]) throws {
        FileManager.default.createFile(atPath: logPath, contents: nil)
        process.executableURL = ServerProcess.binary.deletingLastPathComponent().appendingPathComponent("gridmon-agent")
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.standardOutput = FileHandle.nullDevice
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        try process.run()
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// Lines of the log with `event=NAME`.
    func events(_ name: String) -> [Substring] {
        log.split(separator: "\n").filter { $0.contains("event=\(name) ") || $0.hasSuffix("event=\(name)") }
    }

    /// Whether the log shows `text` within `timeout`.
    func logContains(_ text: String, timeout: TimeInterval = 10) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while !log.contains(text) {
            if Date() > deadline { return false }
            usleep(20_000)
        }
        return true
    }

    /// Sends `signal` and waits (bounded) for the exit status; nil if it did not exit.
    @discardableResult
    func stop(_ signal: Int32 = SIGTERM, timeout: TimeInterval = 15) -> Int32? {
        guard process.isRunning else { return process.terminationStatus }
        kill(process.processIdentifier, signal)
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit(); return nil }
        return process.terminationStatus
    }

    /// Resident memory now, from /proc/PID/status (kB).
    var rssKB: Int { status("VmRSS:") }

    /// The most resident memory the agent has had (kB).
    var peakRSSKB: Int { status("VmHWM:") }

    private func status(_ field: String) -> Int {
        let status = (try? String(contentsOfFile: "/proc/\(process.processIdentifier)/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix(field) } ?? ""
        return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
        try? FileManager.default.removeItem(atPath: logPath)
    }
}

/// The server's view of one node (`/api/v1/nodes`), or nil when it does not know it.
func nodeInfo(_ server: ServerProcess, _ id: String) -> [String: Any]? {
    guard let admin = server.adminAddress, let body = try? httpGet(admin, "/api/v1/nodes").body,
          let list = try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [[String: Any]] else { return nil }
    return list.first { $0["node"] as? String == id }
}

/// The node's durable seq on `server` (0 when unknown).
func durableSeq(_ server: ServerProcess, _ id: String) -> Int { nodeInfo(server, id)?["durable_seq"] as? Int ?? 0 }

/// Waits (bounded) until `condition` holds; returns whether it did.
func eventually(_ seconds: Double = 15, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if condition() { return true }
        usleep(50_000)
    }
    return condition()
}

/// Runs a system tool (openssl, curl, mount …) to completion, stdin empty; its exit status and
/// its stdout and stderr together.
func runTool(_ path: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    let output = Pipe()
    process.standardInput = FileHandle.nullDevice
    process.standardOutput = output
    process.standardError = output
    try process.run()
    let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    return (process.terminationStatus, text)
}
