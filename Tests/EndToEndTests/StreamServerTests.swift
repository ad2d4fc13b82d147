import Foundation
import Glibc
import GridMonPosix
import GridMonWire
import Testing

/// The real server binary over real loopback sockets. `.serialized`: each test starts its own
/// server, and running them one at a time keeps the 2-core machine responsive.
@Suite(.serialized) struct StreamServerTests {
    @Test func handshakeSamplesAndCumulativeAcks() throws {
        let server = try ServerProcess(["--insecure-no-auth", "--scorer", "static"])
        let client = try TestClient(server.address)
        let welcome = try client.hello(node: "web-1", stream: 1)
        #expect(welcome.accepted && welcome.durableSeq == 0 && welcome.streamID == 1)
        #expect(welcome.limits?.maxFrameBytes == UInt32(4 << 20))
        try client.send(batch(1, 1...64), batch(1, 65...70, cpu: 99))
        var durable: UInt64 = 0
        var flagged: [UInt64] = []
        while durable < 70, let message = try client.receive() {
            guard case .ack(let ack) = message else { continue }
            #expect(ack.streamID == 1 && ack.durableSeq >= durable)
            durable = ack.durableSeq
            flagged += ack.anomalies.map(\.seq)
        }
        #expect(durable == 70)
        #expect(flagged == Array(65...70))  // the stand-in scorer flags CPU >= 95 %
    }

    /// A peer still sending while the server shuts down gets the Goodbye and a clean end (a
    /// FIN), not a reset. The server used to close with the peer's unread bytes in its buffer,
    /// so the kernel sent an RST, and the peer's next write failed before it read the Goodbye
    /// (an agent under load then backed off as from a crash).
    @Test func aPeerStillSendingAtShutdownGetsTheGoodbyeAndAFinNotAReset() throws {
        let server = try ServerProcess()
        let client = try TestClient(server.address)
        _ = try client.hello(node: "busy", stream: 1)
        kill(server.process.processIdentifier, SIGTERM)
        // The server stops reading at once and says Goodbye about 250 ms later; keep sending
        // for 1.5 s without reading.
        var writeError: String?
        var seq: UInt64 = 1
        let deadline = Date().addingTimeInterval(1.5)
        while Date() < deadline {
            do { try client.send(batch(1, seq...seq)) } catch { writeError = "\(error)"; break }
            seq += 1
            usleep(5_000)
        }
        #expect(writeError == nil, "a write failed after \(seq - 1) frames: \(writeError ?? "")")
        let messages = try client.drainUntilClosed()
        #expect(messages.contains { if case .goodbye = $0 { true } else { false } }, "\(messages)")
        #expect(client.closedByPeer)
    }

    @Test func severalNodesShareOneConnection() throws {
        let server = try ServerProcess()
        let client = try TestClient(server.address)
        for stream: UInt32 in 1...3 { _ = try client.hello(node: "node-\(stream)", stream: stream) }
        try client.send(batch(2, 1...5), batch(3, 1...2), batch(1, 1...1))
        var acked: [UInt32: UInt64] = [:]
        while acked.count < 3, let message = try client.receive() {
            if case .ack(let ack) = message { acked[ack.streamID] = ack.durableSeq }
        }
        #expect(acked == [1: 1, 2: 5, 3: 2])
    }

    @Test func reconnectResumesAtDurableSeqAndResendsAreNotStoredTwice() throws {
        let server = try ServerProcess()
        do {
            let first = try TestClient(server.address)
            _ = try first.hello(node: "db-1", stream: 1)
            try first.send(batch(1, 1...10))
            guard case .ack(let ack)? = try first.receive() else { Issue.record("no ack"); return }
            #expect(ack.durableSeq == 10)
        }
        let second = try TestClient(server.address)
        let welcome = try second.hello(node: "db-1", stream: 5)
        #expect(welcome.durableSeq == 10)
        try second.send(batch(5, 8...12))  // 8...10 are resends
        guard case .ack(let ack)? = try second.receive() else { Issue.record("no ack"); return }
        #expect(ack.durableSeq == 12)
        #expect(server.stop() == 0)
        #expect(server.logContains("event=stopped samples=12"))
    }

    @Test func newerConnectionOfANodeEvictsTheOlder() throws {
        let server = try ServerProcess()
        let old = try TestClient(server.address)
        _ = try old.hello(node: "app-7", stream: 1)
        let new = try TestClient(server.address)
        _ = try new.hello(node: "app-7", stream: 1)
        let seen = try old.drainUntilClosed()
        #expect(seen.contains { if case .error(let e) = $0 { e.code == .aborted } else { false } })
        #expect(old.closedByPeer)
        try new.send(batch(1, 1...3))
        guard case .ack(let ack)? = try new.receive() else { Issue.record("no ack"); return }
        #expect(ack.durableSeq == 3)
    }

    @Test func evictionWorksAcrossReactorThreads() throws {
        // SO_REUSEPORT hashes connections onto the 4 workers: most pairs cross threads.
        let server = try ServerProcess(["--insecure-no-auth", "--threads", "4"])
        for i in 0..<12 {
            let old = try TestClient(server.address)
            _ = try old.hello(node: "roamer-\(i)", stream: 1)
            try old.send(batch(1, 1...2))
            let new = try TestClient(server.address)
            let welcome = try new.hello(node: "roamer-\(i)", stream: 1)
            let seen = try old.drainUntilClosed()
            #expect(seen.contains { if case .error(let e) = $0 { e.code == .aborted } else { false } })
            // The takeover resumes after whatever the old connection had stored.
            #expect(welcome.durableSeq <= 2)
            try new.send(batch(1, 1...4))
            var durable: UInt64 = 0
            while durable < 4, case .ack(let ack)? = try new.receive() { durable = ack.durableSeq }
            #expect(durable == 4)
        }
        #expect(server.stop() == 0)
        #expect(server.logContains("event=stopped samples=48"))
    }

    @Test func sigtermSaysGoodbyeAndExitsZero() throws {
        let server = try ServerProcess()
        let client = try TestClient(server.address)
        _ = try client.hello(node: "n", stream: 1)
        #expect(server.stop(signal: SIGTERM) == 0)
        let seen = try client.drainUntilClosed()
        #expect(seen.contains { if case .goodbye = $0 { true } else { false } })
    }

    @Test func tokensAreCheckedAndBadOnesClosedWithUnauthenticated() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("tokens-\(UUID())")
        try writeSecret("s3cret acme\n# comment\nother beta\n", to: file.path)
        defer { try? FileManager.default.removeItem(at: file) }
        let server = try ServerProcess([], environment: ["GRIDMON_TOKENS_FILE": file.path])
        let good = try TestClient(server.address)
        #expect(try good.hello(node: "a", stream: 1, token: "s3cret").accepted)

        let bad = try TestClient(server.address)
        try bad.send(.hello(Hello(nodeID: "b", authToken: "s3cre", streamID: 1)), batch(1, 1...5))
        let seen = try bad.drainUntilClosed()
        #expect(seen.count == 1)
        #expect(seen.first.map { if case .error(let e) = $0 { e.code == .unauthenticated } else { false } } == true)
        #expect(bad.closedByPeer)
        // Nothing from the rejected connection was stored; the good one still flows.
        try good.send(batch(1, 1...2))
        guard case .ack(let ack)? = try good.receive() else { Issue.record("no ack"); return }
        #expect(ack.durableSeq == 2)
        #expect(server.stop() == 0)
        #expect(server.logContains("event=stopped samples=2"))
    }

    @Test func sighupReloadsTokensAndABadFileKeepsTheOldOnes() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("tokens-\(UUID())")
        try writeSecret("first acme\n", to: file.path)
        defer { try? FileManager.default.removeItem(at: file) }
        let server = try ServerProcess(["--tokens-file", file.path])
        func accepted(_ token: String) throws -> Bool {
            let client = try TestClient(server.address)
            try client.send(.hello(Hello(nodeID: "n-\(token)", authToken: token, streamID: 1)))
            if case .welcome? = try client.receive() { return true }
            return false
        }
        func waitForLog(_ text: String) {
            for _ in 0..<300 where !server.log.contains(text) { usleep(10_000) }
        }
        #expect(try accepted("first") && !(try accepted("second")))
        try writeSecret("second beta\n", to: file.path)
        kill(server.process.processIdentifier, SIGHUP)
        waitForLog("event=tokens_reloaded tokens=1")
        #expect(try accepted("second") && !(try accepted("first")))
        try writeSecret("broken line with three words\n", to: file.path)
        kill(server.process.processIdentifier, SIGHUP)
        waitForLog("event=tokens_reload_failed")
        #expect(server.logContains("event=tokens_reload_failed"))
        #expect(try accepted("second"))
    }

    @Test func keepalivePingsIdlePeersAndClosesSilentOnes() throws {
        let server = try ServerProcess(["--insecure-no-auth", "--keepalive-ms", "300"])
        let silent = try TestClient(server.address)
        let lively = try TestClient(server.address)
        _ = try silent.hello(node: "silent", stream: 1)
        _ = try lively.hello(node: "lively", stream: 1)
        // The lively peer answers every ping for 2 s; the silent one never does.
        let deadline = Date().addingTimeInterval(2)
        var pings = 0
        while Date() < deadline {
            if case .ping(let ping)? = try lively.receive(timeout: 100) {
                pings += 1
                try lively.send(.pong(Pong(nonce: ping.nonce)))
            }
        }
        #expect(pings >= 2)
        let seen = try silent.drainUntilClosed(timeout: 100)
        #expect(seen.contains { if case .ping = $0 { true } else { false } })
        #expect(silent.closedByPeer)
        try lively.send(batch(1, 1...1))
        var acked = false
        while !acked, let message = try lively.receive() { if case .ack = message { acked = true } }
        #expect(acked)
        #expect(server.logContains("what=keepalive_timeout"))
    }

    @Test func badConfigExitsWith64() throws {
        let process = Process()
        process.executableURL = ServerProcess.binary
        process.arguments = ["--listen", "nonsense"]
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        #expect(process.terminationStatus == 64)
    }
}
