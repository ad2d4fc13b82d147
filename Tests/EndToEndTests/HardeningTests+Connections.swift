import Foundation
import Glibc
import GridMonPosix
import GridMonWire
import Testing

/// Issue #10's connection-level defects against the real binary: pre-auth memory, slow
/// frames, descriptors, silent sockets, revoked tokens, file modes, a second server.
@Suite(.serialized) struct HardeningConnectionTests {
    /// Resident set of `pid` in bytes, from /proc.
    private func rss(_ pid: Int32) -> Int {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/statm", encoding: .utf8),
              let pages = text.split(separator: " ").dropFirst().first.flatMap({ Int($0) }) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    /// CPU seconds `pid` used so far (user + system), from /proc.
    private func cpuSeconds(_ pid: Int32) -> Double {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")") else { return 0 }
        let fields = text[text.index(after: close)...].split(separator: " ")
        let ticks = (Double(fields[11]) ?? 0) + (Double(fields[12]) ?? 0)
        return ticks / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    // Defect 5: before Hello a frame is capped small; a big announced frame sent slowly holds
    // only what arrived; an authenticated peer dribbling a frame is closed at the deadline.
    @Test func unauthenticatedPeersCannotMakeTheServerHoldMemory() throws {
        let server = try ServerProcess(["--insecure-no-auth", "--frame-timeout-ms", "1500", "--handshake-timeout-ms", "20000"])
        let pid = server.process.processIdentifier
        let big = try TestClient(server.address)
        try big.send([0, 0, 0x40, 0, 0])  // 4 MiB announced before any Hello
        #expect(firstError(try big.drainUntilClosed())?.code == .resourceExhausted)
        // 300 peers each announcing 60 kB and sending 1 kB of it.
        let before = rss(pid)
        var slow: [TestClient] = []
        for _ in 0..<300 {
            let client = try TestClient(server.address)
            try client.send([0, 0, 0, 0xEA, 0x60] + [UInt8](repeating: 0x0A, count: 1000))
            slow.append(client)
        }
        var held: Double?
        for _ in 0..<50 where held != 300_000 {  // the server reads them as it gets to them
            usleep(100_000)
            held = metric(try httpGet(try #require(server.adminAddress), "/metrics").body, "gridmon_pre_auth_bytes")
        }
        #expect(held == 300_000)
        #expect(rss(pid) - before < 64 << 20)  // was 1.2 GiB for 300 × 4 MiB
        slow.removeAll()
        // After Hello the full size applies, and a frame must arrive whole within 1.5 s.
        let agent = try TestClient(server.address)
        _ = try agent.hello(node: "dribbler", stream: 1)
        try agent.send([0, 0, 0x10, 0, 0, 0x0A])
        let start = Date()
        let error = firstError(try agent.drainUntilClosed(timeout: 10_000))
        #expect(error?.code == .deadlineExceeded && error?.message.contains("did not arrive whole") == true)
        #expect(Date().timeIntervalSince(start) < 8)
        #expect(server.logContains("frame_timeout"))
    }

    // Defect 6: more connections than descriptors: no spinning, the admin port answers.
    @Test func runningOutOfDescriptorsNeitherSpinsNorStopsHealthz() throws {
        let server = try ServerProcess(["--insecure-no-auth", "--threads", "2"], wrapper: ["/usr/bin/prlimit", "--nofile=128:128", "--"])
        let pid = server.process.processIdentifier
        #expect(server.logContains("max_connections_lowered"))
        var clients: [TestClient] = []
        for _ in 0..<200 { if let client = try? TestClient(server.address) { clients.append(client) } }
        usleep(500_000)
        let cpuBefore = cpuSeconds(pid)
        sleep(2)
        let spent = cpuSeconds(pid) - cpuBefore
        #expect(spent < 0.5, "server used \(spent) CPU-s in 2 s with its descriptors exhausted")
        #expect(try httpGet(try #require(server.adminAddress), "/healthz").status == 200)
        clients.removeAll()
        // Until the server has closed its side of those sockets it may still shed a new
        // connection (accept + close: the designed answer at the limit); an agent retries.
        var welcomed = false
        let deadline = Date().addingTimeInterval(15)
        while !welcomed && Date() < deadline {
            usleep(300_000)
            welcomed = (try? TestClient(server.address).hello(node: "after", stream: 1).accepted) == true
        }
        #expect(welcomed)
        #expect(server.log.utf8.count < 2_000_000)
    }

    // Defect 10: silent sockets from one address are bounded, and displaced when the server is full.
    @Test func silentSocketsCannotLockAgentsOut() throws {
        let server = try ServerProcess(["--insecure-no-auth", "--max-unauthenticated-per-ip", "5", "--max-connections", "8",
                                        "--handshake-timeout-ms", "60000"])
        var silent: [TestClient] = []
        for _ in 0..<5 { silent.append(try TestClient(server.address, sendPreface: false)) }
        usleep(200_000)
        let sixth = try TestClient(server.address, sendPreface: false)
        _ = try sixth.drainUntilClosed(timeout: 2000)
        #expect(sixth.closedByPeer)
        #expect(server.logContains("max_unauthenticated_per_ip"))
        silent.removeAll()
        // A server full of silent sockets (8 of 8, from several "hosts" in effect: the per-IP
        // bound is off here): each agent displaces one that sat without a Hello for a second.
        let full = try ServerProcess(["--insecure-no-auth", "--max-connections", "8", "--threads", "1", "--handshake-timeout-ms", "60000"])
        for _ in 0..<8 { silent.append(try TestClient(full.address, sendPreface: false)) }
        sleep(2)
        var agents: [TestClient] = []
        for i in 0..<4 {
            let agent = try TestClient(full.address)
            #expect(try agent.hello(node: "a\(i)", stream: 1).accepted)
            agents.append(agent)
        }
        #expect(full.logContains("unauthenticated_displaced"))
    }

    // Defect 10: a token revoked by a SIGHUP reload closes the streams it opened.
    @Test func aRevokedTokenStopsStreaming() throws {
        let tokens = tempPath("tokens")
        try writeSecret("keep acme\nrevoke acme\n", to: tokens)
        defer { unlink(tokens) }
        let server = try ServerProcess(["--tokens-file", tokens])
        let kept = try TestClient(server.address)
        _ = try kept.hello(node: "kept", stream: 1, token: "keep")
        let revoked = try TestClient(server.address)
        _ = try revoked.hello(node: "revoked", stream: 1, token: "revoke")
        try writeSecret("keep acme\n", to: tokens)
        kill(server.process.processIdentifier, SIGHUP)
        let error = firstError(try revoked.drainUntilClosed())
        #expect(error?.code == .unauthenticated && error?.message.contains("revoked") == true)
        try kept.send(batch(1, 1...3))
        guard case .ack(let ack)? = try kept.receive() else { Issue.record("no ack"); return }
        #expect(ack.durableSeq == 3)
    }

    // Defect 10: a timestamp outside the window is refused with a message naming the clock.
    @Test func timestampsOutsideTheWindowAreRefused() throws {
        let server = try ServerProcess()
        for bad in [Int64.min, Int64.max] {
            let client = try TestClient(server.address)
            _ = try client.hello(node: "clock-\(bad)", stream: 1)
            try client.send(.samples(SampleBatch(streamID: 1, samples: [Sample(seq: 1, timestampNs: bad)])))
            let error = firstError(try client.drainUntilClosed())
            #expect(error?.code == .invalidArgument && error?.message.contains("check the clock") == true)
        }
    }

    // Defect 10 and the second server: modes, a world-readable tokens file, one server per
    // data directory and per port.
    @Test func filesArePrivateAndASecondServerIsRefused() throws {
        let dir = tempPath("modes")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let server = try ServerProcess(["--insecure-no-auth"], dataDir: dir)
        let client = try TestClient(server.address)
        _ = try client.hello(node: "n", stream: 1)
        try client.send(batch(1, 1...3))
        _ = try client.receive()
        var info = stat()
        stat(dir, &info)
        #expect(info.st_mode & 0o777 == 0o700)
        let segment = try #require(try FileManager.default.contentsOfDirectory(atPath: dir).first { $0.hasSuffix(".seg") })
        stat(dir + "/" + segment, &info)
        #expect(info.st_mode & 0o777 == 0o600)

        // The same data directory, another port: refused, naming the owner.
        let sameDir = try runBinary("gridmon-stream-server", ["--insecure-no-auth", "--listen", "127.0.0.1:0", "--admin-listen", "off",
                                                              "--data-dir", dir], timeout: 20)
        #expect(sameDir.status == 69)
        #expect(sameDir.stderr.contains("in use by another gridmon-stream-server (pid \(server.process.processIdentifier))"))
        // The same port, another directory: refused, not silently shared through SO_REUSEPORT.
        let samePort = try runBinary("gridmon-stream-server", ["--insecure-no-auth", "--listen", "\(server.address)",
                                                               "--admin-listen", "off", "--data-dir", tempPath("other")], timeout: 20)
        #expect(samePort.status == 69)
        #expect(samePort.stderr.contains("the port is in use"))

        // A tokens file others can read is refused at start.
        let tokens = tempPath("open-tokens")
        try "t acme\n".write(toFile: tokens, atomically: true, encoding: .utf8)
        chmod(tokens, 0o644)
        defer { unlink(tokens) }
        let open = try runBinary("gridmon-stream-server", ["--tokens-file", tokens, "--listen", "127.0.0.1:0", "--admin-listen", "off",
                                                           "--data-dir", tempPath("t")], timeout: 20)
        #expect(open.status == 64 && open.stderr.contains("chmod 600"))
    }

    // Defect 10: /api/v1/nodes is paged.
    @Test func theNodeListIsPaged() throws {
        let server = try ServerProcess()
        let client = try TestClient(server.address)
        for i in 0..<25 { _ = try client.hello(node: String(format: "n%02d", i), stream: UInt32(i + 1)) }
        let admin = try #require(server.adminAddress)
        func page(_ query: String) throws -> [String] {
            let body = try httpGet(admin, "/api/v1/nodes?\(query)").body
            return (try JSONSerialization.jsonObject(with: Data(body.utf8)) as! [[String: Any]]).map { $0["node"] as! String }
        }
        let first = try page("limit=10")
        #expect(first == (0..<10).map { String(format: "n%02d", $0) })
        let next = try page("limit=10&after_tenant=default&after_node=n09")
        #expect(next.first == "n10" && next.count == 10)
        #expect(try page("limit=100&after_tenant=default&after_node=n19").count == 5)
        #expect(try httpGet(admin, "/api/v1/nodes?limit=100000").status == 400)
    }
}

extension HardeningConnectionTests {
    // Issue #18, items 1 and 2: a retention limit the outbox cannot keep is refused at start.
    @Test func aRetentionLimitBelowTwoSegmentsIsRefusedNamingBothFlags() throws {
        let result = try runBinary("gridmon-stream-server", ["--insecure-no-auth", "--listen", "127.0.0.1:0", "--admin-listen", "off",
                                                             "--retention-bytes", "4194304", "--data-dir", "/nonexistent/never"], timeout: 20)
        #expect(result.status == 64)
        #expect(result.stderr.contains("--retention-bytes (4194304) must be at least twice --segment-bytes (67108864)"))
    }
}

extension HardeningConnectionTests {
    // The frame deadline runs only while the server reads: a peer the server stopped reading
    // (its output is full: it did not read its Pongs) is not "late" with its half-read frame.
    @Test func theFrameDeadlineDoesNotRunWhileTheServerIsNotReading() throws {
        let server = try ServerProcess(["--insecure-no-auth", "--frame-timeout-ms", "1000", "--keepalive-ms", "0"])
        let client = try TestClient(server.address)
        _ = try client.hello(node: "busy", stream: 1)
        // 15-byte Ping frames in 64 KiB reads: the server's last read before it stops reading
        // (over 1 MiB of Pongs waiting) very likely ends inside a frame.
        var pings: [UInt8] = []
        for nonce in 0..<20_000 { client.encoder.appendFrame(.ping(Ping(nonce: UInt64(nonce) + 1)), to: &pings) }
        var sent = 0
        let deadline = Date().addingTimeInterval(20)
        // Send until the socket stays unwritable for 2 s: the server stopped reading us (the
        // loopback buffers take several MB of Pongs before its 1 MiB output bound is reached).
        while Date() < deadline {
            var pfd = pollfd(fd: client.fd, events: Int16(POLLOUT), revents: 0)
            guard poll(&pfd, 1, 2000) == 1 else { break }
            let result = try pings.withUnsafeBytes { try Socket.write(client.fd, UnsafeRawBufferPointer(rebasing: $0[(sent % pings.count)...])) }
            if case .done(let n) = result { sent += n }
        }
        #expect(server.logContains("output_buffer_full"))
        sleep(3)  // three frame deadlines while not being read
        // Now read everything (the server resumes) while finishing the frame we may have cut.
        let rest = Array(pings[(sent % pings.count)...])
        var restSent = 0
        var pongs = 0
        var errors: [ErrorMessage] = []
        while true {
            if restSent < rest.count,
               case .done(let n)? = try? rest.withUnsafeBytes({ try Socket.write(client.fd, UnsafeRawBufferPointer(rebasing: $0[restSent...])) }) {
                restSent += n
            }
            guard let message = try client.receive(timeout: 1000) else { break }
            if case .pong = message { pongs += 1 }
            if case .error(let e) = message { errors.append(e) }
        }
        #expect(restSent == rest.count)
        #expect(errors.isEmpty, "\(errors)")
        #expect(pongs > 10_000 && !client.closedByPeer)
        #expect(!server.log.contains("frame_timeout"))
    }
}
