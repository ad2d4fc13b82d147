import Foundation
import Glibc
import GridMonPosix
import Testing

/// The real agent against the real server.
@Suite(.serialized) struct AgentTests {
    private func node(_ server: ServerProcess, _ id: String) throws -> [String: Any]? {
        let body = try httpGet(try #require(server.adminAddress), "/api/v1/nodes").body
        let list = try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [[String: Any]] ?? []
        return list.first { $0["node"] as? String == id }
    }

    private func waitFor(_ server: ServerProcess, _ id: String, seqAtLeast: Int, seconds: Double = 10) throws -> [String: Any]? {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if let n = try node(server, id), (n["durable_seq"] as? Int ?? 0) >= seqAtLeast { return n }
            usleep(50_000)
        }
        return try node(server, id)
    }

    @Test func streamsThisMachineSurvivesAServerRestartAndStopsCleanly() throws {
        let port = try freeLoopbackPort()
        var server: ServerProcess? = try ServerProcess(listen: "127.0.0.1:\(port)")
        let agent = Process()
        agent.executableURL = ServerProcess.binary.deletingLastPathComponent().appendingPathComponent("gridmon-agent")
        agent.arguments = ["--server", "127.0.0.1:\(port)", "--node-id", "agent-test", "--interval", "0.05", "--labels", "rack=b12"]
        agent.standardError = FileHandle.nullDevice
        try agent.run()
        defer { if agent.isRunning { kill(agent.processIdentifier, SIGKILL) } }

        let first = try #require(try waitFor(server!, "agent-test", seqAtLeast: 5))
        let sample = try #require(first["last_sample"] as? [String: Any])
        let cpu = try #require(sample["cpu"] as? Double)
        let memory = try #require(sample["memory"] as? Double)
        #expect(cpu >= 0 && cpu <= 100 && memory > 0 && memory < 100)
        #expect((first["labels"] as? [String: String]) == ["rack": "b12"])

        // The server goes away; the agent keeps sampling and comes back when it does.
        #expect(server?.stop(signal: SIGKILL) == SIGKILL)
        server = nil
        usleep(500_000)
        let restarted = try ServerProcess(listen: "127.0.0.1:\(port)")
        // The new server holds nothing, yet the agent's numbering carries on past what it had:
        // the samples buffered during the outage arrive with the seqs they were taken with.
        let again = try #require(try waitFor(restarted, "agent-test", seqAtLeast: 20, seconds: 15))
        #expect((again["samples"] as? Int ?? 0) >= 5)

        kill(agent.processIdentifier, SIGTERM)
        let deadline = Date().addingTimeInterval(10)
        while agent.isRunning && Date() < deadline { usleep(20_000) }
        #expect(!agent.isRunning && agent.terminationStatus == 0)
    }

    @Test func onceReadsEveryGauge() throws {
        let run = try runBinary("gridmon-agent", ["--once", "--interval", "0.2"])
        #expect(run.status == 0)
        for key in ["cpu=", "memory=", "disk=", "load1=", "net_rx=", "net_tx=", "disk_read=", "disk_write="] {
            #expect(run.stdout.contains(key), "\(key) missing in \(run.stdout)")
        }
    }

    @Test func badFlagsExit64() throws {
        #expect(try runBinary("gridmon-agent", ["--server", "nowhere"]).status == 64)
        #expect(try runBinary("gridmon-agent", ["--labels", "novalue"]).status == 64)
    }
}
