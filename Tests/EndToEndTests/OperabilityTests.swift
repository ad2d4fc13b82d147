import Foundation
import Glibc
import GridMonPosix
import Testing

/// Issue #15 through the real binaries: versions, errors that name the real mistake, the
/// configuration file and its precedence, addresses with names and IPv6, process metrics and
/// JSON logs.
@Suite struct OperabilityTests {
    static let binaries = ["gridmon-stream-server", "gridmon-agent", "gridmon-flood", "gridmon-train", "gridmon-bench"]

    @Test func everyBinaryPrintsItsVersionAndHelp() throws {
        for name in Self.binaries {
            let version = try runBinary(name, ["--version"])
            #expect(version.status == 0, "\(name): \(version.stderr)")
            #expect(version.stdout.hasPrefix("\(name) 0.") && version.stdout.contains("wire 1"), "\(name): \(version.stdout)")
            let help = try runBinary(name, ["--help"])
            #expect(help.status == 0 && help.stdout.lowercased().contains("usage"), "\(name) --help: \(help.stdout.prefix(200)) \(help.stderr)")
        }
    }

    /// Each mistake gets an answer about itself, not about a missing tokens file.
    @Test func aMistakeIsNamedForWhatItIs() throws {
        let cases: [([String], String)] = [
            (["--bogus"], "Unknown option '--bogus'"),
            (["serve", "export"], "Unexpected argument 'export'"),
            (["--insecure-no-auth", "--listen", "0.0.0.0:99999"], "port 99999 is not within 0...65535"),
            (["--insecure-no-auth", "--listen", "::1:7070"], "an IPv6 address goes in brackets"),
            (["--insecure-no-auth", "--listen", "no-such-host.invalid:7070"], "host 'no-such-host.invalid' does not resolve"),
            (["--insecure-no-auth", "--threads", "many"], "'many' is invalid for '--threads"),
            (["--insecure-no-auth", "--log-format", "xml"], "--log-format: expected logfmt or json, got 'xml'"),
        ]
        for (arguments, expected) in cases {
            let run = try runBinary("gridmon-stream-server", arguments + ["--data-dir", tempPath("never")])
            #expect(run.status == 64, "\(arguments): \(run.status) \(run.stderr)")
            #expect(run.stderr.contains(expected), "\(arguments): \(run.stderr)")
        }
        let bench = try runBinary("gridmon-bench", ["nonsense"])
        #expect(bench.status == 2 && bench.stderr.contains("unknown benchmark 'nonsense'") && bench.stderr.contains("usage:"))
    }

    @Test func aBadVariableIsAnErrorNamingItUnlessTheFlagReplacesIt() throws {
        let bad = try runBinary("gridmon-stream-server", ["--insecure-no-auth", "--data-dir", tempPath("never")],
                                environment: ["GRIDMON_THREADS": "many"])
        #expect(bad.status == 64 && bad.stderr.contains("GRIDMON_THREADS: expected an integer, got 'many'"), "\(bad.stderr)")
        let replaced = try ServerProcess(["--insecure-no-auth", "--threads", "1"], environment: ["GRIDMON_THREADS": "many"])
        #expect(replaced.log.contains("threads=1"))
        let agent = try runBinary("gridmon-agent", ["--once"], environment: ["GRIDMON_INTERVAL": "soon"])
        #expect(agent.status == 64 && agent.stderr.contains("GRIDMON_INTERVAL: expected seconds"), "\(agent.stderr)")
        let train = try runBinary("gridmon-train", ["fit", "--data", "x.csv"], environment: ["GRIDMON_TREES": "abc"])
        #expect(train.status == 64 && train.stderr.contains("GRIDMON_TREES: expected an integer, got 'abc'"), "\(train.stderr)")
        let flood = try runBinary("gridmon-flood", ["--samples", "1"], environment: ["GRIDMON_CONNECTIONS": "lots"])
        #expect(flood.status == 64 && flood.stderr.contains("GRIDMON_CONNECTIONS: expected an integer, got 'lots'"), "\(flood.stderr)")
    }

    @Test func modelsTokensAndStoresThatCannotWorkAreRefusedSayingWhy() throws {
        let dir = tempPath("operability-models")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var csv = "foo,bar\n"
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<300 { csv += "\(Double.random(in: 0...1, using: &rng)),\(Double.random(in: 0...1, using: &rng))\n" }
        try csv.write(toFile: dir + "/other.csv", atomically: true, encoding: .utf8)
        #expect(try runBinary("gridmon-train", ["fit", "--data", dir + "/other.csv", "--out", dir + "/other.gmf"]).status == 0)
        #expect(try runBinary("gridmon-train", ["fit", "--method", "temporal", "--data", dir + "/other.csv", "--out", dir + "/other.gmd"]).status == 0)

        let forest = try runBinary("gridmon-stream-server", ["--insecure-no-auth", "--scorer", "forest", "--model", dir + "/other.gmf",
                                                             "--data-dir", dir + "/d1", "--listen", "127.0.0.1:0", "--admin-listen", "off"])
        #expect(forest.status == 64 && forest.stderr.contains("trained on columns foo, bar, none of which the server receives"), "\(forest.stderr)")
        let temporal = try runBinary("gridmon-stream-server", ["--insecure-no-auth", "--model", dir + "/other.gmd",
                                                               "--data-dir", dir + "/d2", "--listen", "127.0.0.1:0", "--admin-listen", "off"])
        #expect(temporal.status == 64 && temporal.stderr.contains("none of which the server receives"), "\(temporal.stderr)")
        let kind = try runBinary("gridmon-stream-server", ["--insecure-no-auth", "--scorer", "forest", "--model", dir + "/other.gmd",
                                                           "--data-dir", dir + "/d3", "--listen", "127.0.0.1:0", "--admin-listen", "off"])
        #expect(kind.status == 64 && kind.stderr.contains("is a temporal detector"), "\(kind.stderr)")

        try writeSecret("# no tokens yet\n", to: dir + "/tokens")
        let empty = try runBinary("gridmon-stream-server", ["--tokens-file", dir + "/tokens", "--data-dir", dir + "/d4",
                                                            "--listen", "127.0.0.1:0", "--admin-listen", "off"])
        #expect(empty.status == 64 && empty.stderr.contains("holds no tokens"), "\(empty.stderr)")

        try FileManager.default.createDirectory(atPath: dir + "/not-an-outbox", withIntermediateDirectories: true)
        let export = try runBinary("gridmon-stream-server", ["export", "--data-dir", dir + "/not-an-outbox"])
        #expect(export.status == 1 && export.stderr.contains("holds no outbox"), "\(export.stderr)")
    }

    @Test func aFloodThatReachesNothingFails() throws {
        let nowhere = try ReservedPort()
        let run = try runBinary("gridmon-flood", ["--target", "127.0.0.1:\(nowhere.port)", "--samples", "10", "--duration", "2", "--quiet"])
        #expect(run.status == 1, "\(run.stdout) \(run.stderr)")
        #expect(run.stderr.contains("event=nothing_acked") && run.stderr.contains("connect"), "\(run.stderr)")
        // Bounded by count alone, it gives up after 30 s of nothing instead of retrying for ever.
        let countOnly = try runBinary("gridmon-flood", ["--target", "127.0.0.1:\(nowhere.port)", "--samples", "10", "--quiet"], timeout: 90)
        #expect(countOnly.status == 1 && countOnly.stdout.contains("nothing_acked_in_30s"), "\(countOnly.stdout) \(countOnly.stderr)")
    }

    /// IPv6 and host names: the server listens on [::1] and an agent and the flood reach it
    /// there; `localhost` binds 127.0.0.1 (not ::1, which IPv4 agents would miss).
    @Test func serversListenOnIPv6AndNamesAndClientsReachThem() throws {
        let server = try ServerProcess(["--insecure-no-auth"], listen: "[::1]:0")
        #expect(server.address.host == "::1")
        let agent = try AgentProcess(["--server", "[::1]:\(server.address.port)", "--node-id", "v6-node", "--interval", "100ms"])
        defer { agent.stop() }
        #expect(agent.logContains("event=connected", timeout: 10), "\(agent.log)")
        let flood = try runBinary("gridmon-flood", ["--target", "[::1]:\(server.address.port)", "--samples", "50", "--quiet"])
        #expect(flood.status == 0, "\(flood.stderr)")

        let named = try ServerProcess(["--insecure-no-auth"], listen: "localhost:0")
        #expect(named.address.host == "127.0.0.1")
    }

    @Test func metricsCarryProcessFamiliesAndBuildInfo() throws {
        let server = try ServerProcess()
        let admin = try #require(server.adminAddress)
        let body = try httpGet(admin, "/metrics").body
        let cpu = try #require(metric(body, "process_cpu_seconds_total"))
        #expect(cpu > 0)
        let rss = try #require(metric(body, "process_resident_memory_bytes"))
        #expect(rss > 1_000_000 && rss < 4_000_000_000)
        let fds = try #require(metric(body, "process_open_fds"))
        #expect(fds >= 5 && fds < 1000)  // stdio, epoll, listeners, outbox
        let start = try #require(metric(body, "process_start_time_seconds"))
        #expect(abs(start - Date().timeIntervalSince1970) < 120)
        #expect(body.contains("# TYPE process_cpu_seconds_total counter"))
        #expect(body.contains("gridmon_build_info{version=\"0.") && body.contains("wire=\"1\""))
    }

    @Test func jsonLogsAreOneObjectPerLineWithRFC3339Times() throws {
        let dir = tempPath("json-logs")
        let server = try ServerProcess(["--insecure-no-auth", "--log-format", "json"], dataDir: dir)
        _ = server.stop()
        let lines = server.log.split(separator: "\n").filter { !$0.isEmpty }
        #expect(lines.count >= 3)
        var events: [String] = []
        for line in lines {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "\(line)")
            let ts = try #require(object["ts"] as? String)
            #expect(ts.count == 24 && ts.hasSuffix("Z") && ts.dropFirst(10).hasPrefix("T"), "\(ts)")
            events.append(object["event"] as? String ?? "")
        }
        #expect(events.contains("listening") && events.contains("stopped"), "\(events)")
        let logfmt = try ServerProcess()
        #expect(logfmt.log.contains("ts=20") && logfmt.log.contains("Z level=info event=listening"))
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// Precedence flag > variable > file > default, seen on what the server logs it uses.
    @Test func aConfigFileIsReadAndAVariableAndAFlagWinOverIt() throws {
        let dir = tempPath("config-file")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try """
            # gridmon-stream-server settings
            insecure_no_auth = true
            max_connections = 5
            threads = 1
            [node]
            warmup = 50
            """.write(toFile: dir + "/server.toml", atomically: true, encoding: .utf8)
        let fileOnly = try ServerProcess(["--config", dir + "/server.toml"])
        #expect(fileOnly.log.contains("max_connections=5") && fileOnly.log.contains("threads=1") && fileOnly.log.contains("learning=\"50 samples\""), "\(fileOnly.log)")
        let variable = try ServerProcess(["--config", dir + "/server.toml"], environment: ["GRIDMON_MAX_CONNECTIONS": "6"])
        #expect(variable.log.contains("max_connections=6"))
        let flag = try ServerProcess(["--config", dir + "/server.toml", "--max-connections", "7"], environment: ["GRIDMON_MAX_CONNECTIONS": "6"])
        #expect(flag.log.contains("max_connections=7"))
        let byVariable = try ServerProcess([], environment: ["GRIDMON_CONFIG": dir + "/server.toml"])
        #expect(byVariable.log.contains("max_connections=5"))

        let check = try runBinary("gridmon-stream-server", ["config", "check", dir + "/server.toml"])
        #expect(check.status == 0 && check.stdout == dir + "/server.toml: ok\n", "\(check.stdout) \(check.stderr)")
        try "max_conections = 5\ninsecure_no_auth = true\n".write(toFile: dir + "/typo.toml", atomically: true, encoding: .utf8)
        let typo = try runBinary("gridmon-stream-server", ["config", "check", dir + "/typo.toml"])
        #expect(typo.status == 64 && typo.stderr.contains("typo.toml: unknown key 'max_conections'"), "\(typo.stderr)")
        try "threads = \"many\"\ninsecure_no_auth = true\n".write(toFile: dir + "/bad.toml", atomically: true, encoding: .utf8)
        let bad = try runBinary("gridmon-stream-server", ["--config", dir + "/bad.toml", "--data-dir", dir + "/d"])
        #expect(bad.status == 64 && bad.stderr.contains("bad.toml: threads: expected an integer, got 'many'"), "\(bad.stderr)")
        try "threads = 2\n[broken\n".write(toFile: dir + "/syntax.toml", atomically: true, encoding: .utf8)
        let syntax = try runBinary("gridmon-stream-server", ["config", "check", dir + "/syntax.toml"])
        #expect(syntax.status == 64 && syntax.stderr.contains("syntax.toml: line 2"), "\(syntax.stderr)")
        try writeSecret("", to: dir + "/tokens")
        try "tokens_file = \"\(dir)/tokens\"\n".write(toFile: dir + "/empty-tokens.toml", atomically: true, encoding: .utf8)
        let noTokens = try runBinary("gridmon-stream-server", ["config", "check", dir + "/empty-tokens.toml"])
        #expect(noTokens.status == 64 && noTokens.stderr.contains("tokens_file") && noTokens.stderr.contains("holds no tokens"), "\(noTokens.stderr)")
    }

    @Test func theAgentReadsItsSettingsFromAFileToo() throws {
        let server = try ServerProcess()
        let dir = tempPath("agent-config")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try """
            server = ["127.0.0.1:\(server.address.port)"]
            node_id = "from-file"
            interval = "100ms"
            collectors = ["cpu", "mem", "disk"]
            buffer_dir = "\(dir)/buffer"
            log_format = "json"
            """.write(toFile: dir + "/agent.toml", atomically: true, encoding: .utf8)
        let agent = try AgentProcess(["--config", dir + "/agent.toml"])
        defer { agent.stop() }
        #expect(agent.logContains("\"event\":\"connected\"", timeout: 10), "\(agent.log)")
        for line in agent.log.split(separator: "\n") {
            #expect((try? JSONSerialization.jsonObject(with: Data(line.utf8))) is [String: Any], "not JSON: \(line)")
        }
        #expect(eventually(10) { (try? httpGet(server.adminAddress!, "/api/v1/nodes").body.contains("from-file")) == true })
        #expect(FileManager.default.fileExists(atPath: dir + "/buffer"))
        try "collector = [\"cpu\"]\n".write(toFile: dir + "/typo.toml", atomically: true, encoding: .utf8)
        let typo = try runBinary("gridmon-agent", ["--config", dir + "/typo.toml", "--once"])
        #expect(typo.status == 64 && typo.stderr.contains("typo.toml: unknown key 'collector'"), "\(typo.stderr)")
    }

    /// The README's configuration reference is generated from the binaries' flags; a flag
    /// added, renamed or re-defaulted without it fails here.
    @Test func theReadmeConfigurationReferenceMatchesTheFlags() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", root.appendingPathComponent("Tools/config-reference").path,
                             "--check", root.appendingPathComponent("README.md").path,
                             "--bin", ServerProcess.binary.deletingLastPathComponent().path]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let diff = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "README.md differs from the flags (Tools/config-reference --write README.md):\n\(diff.prefix(3000))")
    }
}
