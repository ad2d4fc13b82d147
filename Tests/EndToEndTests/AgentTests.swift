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

    @Test func aCleanServerRestartIsFollowedWithinASecondNotOnTheGrowingBackoff() throws {
        let port = try freeLoopbackPort()
        let data = tempPath("server-data")
        defer { try? FileManager.default.removeItem(atPath: data) }
        var server: ServerProcess? = try ServerProcess(listen: "127.0.0.1:\(port)", dataDir: data)
        let agent = try AgentProcess(["--server", "127.0.0.1:\(port)", "--node-id", "restart-1", "--interval", "100ms"])
        #expect(eventually { durableSeq(server!, "restart-1") >= 5 })
        // SIGTERM: the server says Goodbye. It stays away 12 s (the backoff would have grown to
        // 16-30 s between attempts by then), then returns on the same port.
        #expect(server?.stop() == 0)
        server = nil
        #expect(agent.logContains("event=server_goodbye"))
        usleep(12_000_000)
        let back = try ServerProcess(listen: "127.0.0.1:\(port)", dataDir: data)
        let returned = Date()
        #expect(eventually(10) { durableSeq(back, "restart-1") > 0 && agent.events("welcomed").count >= 2 })
        #expect(Date().timeIntervalSince(returned) < 2.5, "\(agent.log.suffix(1500))")
        #expect(agent.stop() == 0)
    }

    @Test func framesStayWithinTheServersLimitAndAnUnsendableSampleIsSkippedNotResentForever() throws {
        let textfiles = tempPath("big-textfile")
        try FileManager.default.createDirectory(atPath: textfiles, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: textfiles) }
        let name = String(repeating: "n", count: 200)
        // ~22 KB per sample: a backlog of them is far past a 64 KiB frame.
        try (0..<100).map { "\(name)_\($0) \($0)" }.joined(separator: "\n").write(toFile: textfiles + "/app.prom", atomically: true, encoding: .utf8)
        let port = try freeLoopbackPort()
        let agent = try AgentProcess(["--server", "127.0.0.1:\(port)", "--node-id", "big", "--interval", "50ms",
                                      "--textfile-dir", textfiles, "--collectors", "cpu,mem,textfile", "--connect-timeout", "1s"])
        usleep(2_500_000)  // a backlog while the server is away
        let server = try ServerProcess(["--insecure-no-auth", "--max-frame-bytes", "65536"], listen: "127.0.0.1:\(port)")
        #expect(eventually(40) { durableSeq(server, "big") >= 60 }, "\(agent.log.suffix(1500))")
        let metrics = try httpGet(try #require(server.adminAddress), "/metrics").body
        #expect(metric(metrics, "gridmon_decode_errors_total{kind=\"oversize_frame\"}") == nil)
        #expect(agent.events("welcomed").count == 1)  // never refused and reconnected

        // Now one sample alone is larger than a frame: it is skipped and said, the rest flows.
        try (0..<400).map { "\(name)_\($0) \($0)" }.joined(separator: "\n").write(toFile: textfiles + "/app.prom", atomically: true, encoding: .utf8)
        #expect(agent.logContains("event=sample_too_large"))
        try "small 1\n".write(toFile: textfiles + "/app.prom", atomically: true, encoding: .utf8)
        let before = durableSeq(server, "big")
        #expect(eventually { durableSeq(server, "big") > before + 5 })
        #expect(agent.events("welcomed").count == 1)
        #expect(agent.stop() == 0)
        #expect(agent.events("agent_stopped").first?.contains("unacked=0") == true)
    }

    @Test func oncePrintsOneSampleAsJSONWithEveryInputAndTextfileGauges() throws {
        let dir = tempPath("textfile")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "# app gauges\nqueue_depth{queue=\"mail\"} 17\nbackups_ok 1\nbroken line here\ncpu 99\n".write(toFile: dir + "/app.prom", atomically: true, encoding: .utf8)
        try "ignored 1\n".write(toFile: dir + "/notes.txt", atomically: true, encoding: .utf8)
        let run = try runBinary("gridmon-agent", ["--once", "--interval", "200ms", "--node-id", "once-1", "--textfile-dir", dir])
        #expect(run.status == 0, "\(run.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
        #expect(json["node"] as? String == "once-1" && json["seq"] as? Int == 1)
        let gauges = try #require(json["gauges"] as? [String: Double])
        for key in ["cpu", "memory", "disk", "load1", "net_rx", "net_tx", "disk_read", "disk_write",
                    "cpu_usage_user", "cpu_usage_iowait", "cpu_usage_steal", "mem_available", "mem_cached", "swap_used_percent",
                    "system_load15", "system_uptime", "processes_total", "processes_blocked", "disk_used_percent./",
                    "disk_inodes_used_percent./"] {
            #expect(gauges[key] != nil, "\(key) missing in \(run.stdout)")
        }
        #expect(gauges.keys.contains { $0.hasPrefix("diskio_read_bytes_per_s.") })
        #expect(gauges["queue_depth{queue=\"mail\"}"] == 17 && gauges["backups_ok"] == 1 && gauges["ignored"] == nil)
        #expect(gauges["cpu"] != 99)  // a textfile cannot overwrite a collector's gauge
        #expect(run.stderr.contains("event=textfile_problem") && run.stderr.contains("app.prom:4"))
        // Read twice (two reads make one sample), reported once.
        #expect(run.stderr.components(separatedBy: "app.prom:4").count == 2)
        #expect(run.stderr.contains("gauge cpu is already sent"))
    }

    @Test func everyBadFlagOrVariableIsAnErrorNamingIt() throws {
        let cases: [([String], [String: String], String)] = [
            (["--server", "nowhere"], [:], "--server"),
            (["--server", "::1:7070"], [:], "--server"),
            (["--labels", "novalue"], [:], "--labels"),
            (["--interval", "-1"], [:], "--interval"),
            ([], ["GRIDMON_INTERVAL": "5x"], "GRIDMON_INTERVAL"),
            ([], ["GRIDMON_BUFFER_MAX_BYTES": "lots"], "GRIDMON_BUFFER_MAX_BYTES"),
            ([], ["GRIDMON_PER_CPU": "maybe"], "GRIDMON_PER_CPU"),
            (["--collectors", "cpu,gpu"], [:], "unknown input 'gpu'"),
            (["--disk-path", "/nonexistent"], [:], "--disk-path"),
            (["--textfile-dir", "/nonexistent"], [:], "--textfile-dir"),
            (["--failback", "0s"], [:], "--failback"),
        ]
        for (arguments, environment, named) in cases {
            let agent = try AgentProcess(arguments + ["--once"], environment: environment)
            agent.process.waitUntilExit()
            #expect(agent.process.terminationStatus == 64, "\(arguments) \(environment)")
            #expect(agent.log.contains(named), "\(arguments) \(environment): \(agent.log)")
        }
        // A good variable is used: 5s is a valid interval (the process would wait 5 s in --once).
        let good = try runBinary("gridmon-agent", ["--once", "--collectors", "mem"], timeout: 20)
        #expect(good.status == 0)
    }

    @Test func aTokenFileOthersCanReadIsRefusedAndAPrivateOneIsUsed() throws {
        let path = tempPath("token")
        defer { unlink(path) }
        try "secret-token\n".write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o644)
        let open = try runBinary("gridmon-agent", ["--token-file", path, "--once", "--collectors", "mem"])
        #expect(open.status == 64 && open.stderr.contains("permissions 644") && open.stderr.contains("chmod 600"))
        let both = try runBinary("gridmon-agent", ["--token-file", path, "--token", "x", "--once"])
        #expect(both.status == 64 && both.stderr.contains("give the token one way"))

        // With the right permissions the token authenticates the node.
        chmod(path, 0o600)
        let tokens = tempPath("tokens")
        defer { unlink(tokens) }
        try writeSecret("secret-token acme\n", to: tokens)
        let server = try ServerProcess(["--tokens-file", tokens])
        let agent = try AgentProcess(["--server", "\(server.address)", "--token-file", path, "--node-id", "tok-1", "--interval", "100ms"])
        #expect(eventually { durableSeq(server, "tok-1") >= 3 })
        #expect(nodeInfo(server, "tok-1")?["tenant"] as? String == "acme")
        #expect(agent.stop() == 0)
    }

    @Test func twoMachinesWithOneNodeIDAreNamedNotEvictedInALoop() throws {
        let server = try ServerProcess()
        let first = try AgentProcess(["--server", "\(server.address)", "--node-id", "clone", "--interval", "100ms"])
        #expect(eventually { durableSeq(server, "clone") >= 5 })
        let clone = try AgentProcess(["--server", "\(server.address)", "--node-id", "clone", "--interval", "100ms"])
        #expect(clone.logContains("event=node_id_conflict"))
        let line = String(clone.events("node_id_conflict").first ?? "")
        #expect(line.contains("node clone is already streaming from 127.0.0.1:") && line.contains("--node-id"))
        #expect(server.logContains("node_id_conflict"))
        let before = durableSeq(server, "clone")
        usleep(2_000_000)
        // The first keeps streaming, undisturbed; the clone backs off instead of looping.
        #expect(durableSeq(server, "clone") >= before + 10)
        let metrics = try httpGet(try #require(server.adminAddress), "/metrics").body
        #expect((metric(metrics, "gridmon_stream_evictions_total") ?? -1) == 0)
        #expect(clone.events("node_id_conflict").count <= 3)
        #expect(first.stop() == 0)
        clone.stop()
    }

    @Test func aHostNameIsResolvedAndEachOfItsAddressesTried() throws {
        let server = try ServerProcess()
        // localhost may resolve to ::1 first, where this server does not listen: the agent
        // must try the next address rather than give up on the server.
        let byName = try AgentProcess(["--server", "localhost:\(server.address.port)", "--node-id", "named-1", "--interval", "100ms"])
        #expect(eventually { durableSeq(server, "named-1") >= 3 }, "\(byName.log)")
        #expect(byName.stop() == 0)
        let nowhere = try AgentProcess(["--server", "no-such-host.invalid:7070", "--node-id", "n", "--interval", "100ms"])
        #expect(nowhere.logContains("event=resolve_failed server=no-such-host.invalid:7070"))
        nowhere.stop()
    }
}

/// The agent against servers that misbehave on purpose (issue #12): it backs off, says what
/// happened, and neither spins nor grows.
@Suite(.serialized) struct AgentMisbehavingServerTests {
    @Test func silentClosingAndGarbageServersAreRetriedEverMoreSlowly() throws {
        let servers: [(FakeServer.Behavior, String)] = [(.silent, "no_welcome"), (.welcomeThenClose, "connection_lost"),
                                                        (.garbage, "bad_server_data")]
        var running: [(FakeServer, AgentProcess, String)] = []
        for (behavior, event) in servers {
            let server = try FakeServer(behavior)
            let agent = try AgentProcess(["--server", "127.0.0.1:\(server.port)", "--node-id", "victim", "--interval", "100ms",
                                          "--connect-timeout", "500ms"])
            running.append((server, agent, event))
        }
        usleep(8_000_000)
        for (server, agent, event) in running {
            #expect(agent.logContains("event=\(event)", timeout: 1), "\(event): \(agent.log.suffix(1500))")
            // Retried, but with a growing backoff: a reset after every Welcome would have made
            // ~30 attempts in 8 s.
            #expect(server.accepted >= 2 && server.accepted <= 12, "\(event): \(server.accepted) connections")
            #expect(cpuSeconds(agent.process.processIdentifier) < 1.5, "\(event): the agent spun")
            #expect(agent.rssKB > 0 && agent.rssKB < 40_000, "\(event): \(agent.rssKB) kB")
            #expect(agent.stop() == 0)
            server.stop()
        }
    }

    @Test func anAckThatWouldDecodeToHundredsOfMegabytesIsRefusedAndTheAgentStaysSmall() throws {
        let server = try FakeServer(.bloatedAck)
        defer { server.stop() }
        let agent = try AgentProcess(["--server", "127.0.0.1:\(server.port)", "--node-id", "victim", "--interval", "100ms",
                                      "--collectors", "cpu,mem"])
        #expect(agent.logContains("decodes to more than 67108864 bytes", timeout: 15), "\(agent.log.suffix(1500))")
        #expect(agent.events("bad_server_data").count >= 1)
        // Refused before it is built: the agent's peak stays near its 64 MiB decode budget.
        #expect(agent.peakRSSKB > 0 && agent.peakRSSKB < 150_000, "\(agent.peakRSSKB) kB at peak")
        #expect(agent.stop() == 0)
    }

    @Test func anAckWithManyVerdictsIsLoggedInAHundredLinesAndASum() throws {
        let server = try FakeServer(.flaggingEverything)
        defer { server.stop() }
        let agent = try AgentProcess(["--server", "127.0.0.1:\(server.port)", "--node-id", "flagged", "--interval", "200ms",
                                      "--collectors", "cpu"])
        #expect(agent.logContains("event=anomalies_not_logged", timeout: 15), "\(agent.log.suffix(1500))")
        #expect(agent.stop() == 0)
        let sums = agent.events("anomalies_not_logged")
        let lines = agent.events("anomaly").count
        // Each Ack: 100 lines, then one line for its other 150 verdicts (250 - 100), the
        // highest score among them 0.5 + 249/1000.
        #expect(sums.count >= 1 && lines == 100 * sums.count, "\(lines) anomaly lines, \(sums.count) sums")
        #expect(sums.allSatisfy { $0.contains("count=150") && $0.contains("highest_score=0.749") }, "\(sums.first ?? "")")
    }

    @Test func aBrokenFirstServerDoesNotKeepTheAgentFromAWorkingSecond() throws {
        let broken = try FakeServer(.welcomeThenClose)
        let working = try FakeServer(.acknowledging)
        defer { broken.stop(); working.stop() }
        let agent = try AgentProcess(["--server", "127.0.0.1:\(broken.port),127.0.0.1:\(working.port)", "--node-id", "fo",
                                      "--interval", "50ms", "--failback", "2s"])
        #expect(eventually { working.samples >= 20 }, "\(agent.log)")
        // It still tries the first server again after --failback, and falls through again.
        #expect(eventually(10) { agent.log.contains("event=failback") && broken.accepted >= 2 })
        #expect(agent.stop() == 0)
    }

    @Test func aFullMemoryBufferDropsTheOldestSaysSoOnceAndStaysBounded() throws {
        let agent = try AgentProcess(["--server", "127.0.0.1:1", "--node-id", "full-memory", "--interval", "10ms",
                                      "--buffer-max-bytes", "64KiB", "--collectors", "cpu,mem"])
        #expect(agent.logContains("event=buffer_full", timeout: 15))
        usleep(3_000_000)
        // Hundreds of samples dropped since, one line (the next after a minute).
        #expect(agent.events("buffer_full").count == 1)
        #expect(agent.rssKB < 40_000)
        #expect(agent.stop() == 0)
        let stopped = String(agent.events("agent_stopped").first ?? "")
        #expect(stopped.contains("level=warn") && stopped.contains("--buffer-dir"))
    }

    @Test func anIPv6ServerIsReachedAndAcknowledgesEverySample() throws {
        let server = try FakeServer(.acknowledging, ipv6: true)
        defer { server.stop() }
        let agent = try AgentProcess(["--server", "[::1]:\(server.port)", "--node-id", "v6", "--interval", "50ms"])
        #expect(eventually { server.samples >= 10 }, "\(agent.log)")
        #expect(agent.stop() == 0)
        #expect(agent.events("agent_stopped").first?.contains("unacked=0") == true)
    }
}

/// The disk buffer on a filesystem that fills up (a 512 KiB tmpfs the test mounts; root only):
/// the agent keeps running, the oldest samples make room for the newest (counted, logged),
/// and what it kept reaches the server once it is back.
@Suite(.serialized, .enabled(if: getuid() == 0)) struct AgentFullDiskTests {
    @Test func aFullBufferFilesystemDropsTheOldestAndKeepsTheNewest() throws {
        let mountPoint = tempPath("small-fs")
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        let mounted = try runTool("/usr/bin/mount", ["-t", "tmpfs", "-o", "size=512k", "tmpfs", mountPoint]).status
        try #require(mounted == 0)
        defer {
            _ = try? runTool("/usr/bin/umount", [mountPoint])
            try? FileManager.default.removeItem(atPath: mountPoint)
        }
        let port = try freeLoopbackPort()
        let agent = try AgentProcess(["--server", "127.0.0.1:\(port)", "--node-id", "full-disk", "--interval", "10ms",
                                      "--buffer-dir", mountPoint + "/buffer", "--per-cpu", "true", "--connect-timeout", "1s"])
        #expect(agent.logContains("reason=\"the buffer's filesystem is full\"", timeout: 30), "\(agent.log.suffix(1500))")
        usleep(1_000_000)
        #expect(agent.process.isRunning)
        // Writes that failed outright (no older segment left to free) are rare, and counted.
        #expect(agent.events("buffer_write_failed").count <= 1)

        let server = try ServerProcess(listen: "127.0.0.1:\(port)")
        // The agent has backed off for a while by now (up to 30 s between attempts).
        #expect(eventually(45) { (nodeInfo(server, "full-disk")?["samples"] as? Int ?? 0) >= 100 }, "\(agent.log.suffix(1500))")
        #expect(agent.stop() == 0)
        let node = try #require(nodeInfo(server, "full-disk"))
        // The oldest went: the server holds fewer samples than the agent numbered.
        #expect((node["samples"] as? Int ?? 0) < (node["durable_seq"] as? Int ?? 0))
        #expect(agent.events("agent_stopped").first?.contains("unacked=0") == true)
    }
}
