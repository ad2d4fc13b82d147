import Foundation
import Glibc
import GridMonPosix
import GridMonWire
import Testing

/// Every kind of bad input against the real server: each gets its documented error or close,
/// and a healthy connection opened first keeps flowing.
@Suite(.serialized) struct BadInputTests {
    /// Runs `attack` on a fresh connection while a good one streams, and checks the good one.
    private func withBystander(_ server: ServerProcess, _ attack: () throws -> Void) throws {
        let good = try TestClient(server.address)
        _ = try good.hello(node: "bystander", stream: 1)
        try attack()
        try good.send(batch(1, 1...3))
        var durable: UInt64 = 0
        while durable < 3, let message = try good.receive() {
            if case .ack(let ack) = message { durable = ack.durableSeq }
        }
        #expect(durable >= 3)
    }

    private func errorCode(_ messages: [Message]) -> StatusCode? {
        for message in messages { if case .error(let e) = message { return e.code } }
        return nil
    }

    @Test func garbageBytesAndHTTPAreRejectedAtOnce() throws {
        let server = try ServerProcess()
        try withBystander(server) {
            let garbage = try TestClient(server.address, sendPreface: false)
            try garbage.send([0xDE, 0xAD, 0xBE, 0xEF, 1, 2, 3, 4, 5])
            _ = try garbage.drainUntilClosed()
            #expect(garbage.closedByPeer)
            let http = try TestClient(server.address, sendPreface: false)
            try http.send(Array("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
            _ = try http.drainUntilClosed()
            #expect(http.closedByPeer)
        }
        #expect(server.logContains("kind=bad_preface"))
        #expect(server.logContains("looks like an HTTP request"))
    }

    @Test func oversizedLengthGetsResourceExhausted() throws {
        let server = try ServerProcess()
        try withBystander(server) {
            let client = try TestClient(server.address)
            try client.send([0, 0x80, 0, 0, 0])  // 2 GiB announced
            #expect(errorCode(try client.drainUntilClosed()) == .resourceExhausted)
        }
    }

    @Test func framesOfEmptySamplesOrGaugesAreRefusedBeforeTheyAreBuilt() throws {
        // 2,000,000 empty samples (2 bytes each: 4 MB, under the 4 MiB frame cap) would be
        // 176 MB of samples, more through protobuf-c (the unknown Frame field 15 sends them
        // there); 1,900,000 empty gauges in one sample, through protobuf-c, alike. Each is
        // refused whole. (The same gauges in the plain shape are 46 MB as values, inside the
        // 64 MiB budget: taken.)
        var emptySamples: [UInt8] = [0x08, 0x01]
        emptySamples.reserveCapacity(4_000_002)
        for _ in 0..<2_000_000 { emptySamples += [0x12, 0x00] }
        var emptyGauges: [UInt8] = [0x08, 0x01]
        emptyGauges.reserveCapacity(3_800_002)
        for _ in 0..<1_900_000 { emptyGauges += [0x5A, 0x00] }
        let payloads = [protobufField(3, emptySamples), protobufField(3, emptySamples) + [0x7A, 0x00],
                        protobufField(3, [0x08, 0x01] + protobufField(2, emptyGauges)) + [0x7A, 0x00]]
        let server = try ServerProcess()
        try withBystander(server) {
            for (index, payload) in payloads.enumerated() {
                let client = try TestClient(server.address)
                _ = try client.hello(node: "hostile-\(index)", stream: 1)
                try client.send(rawFrame(payload))
                #expect(errorCode(try client.drainUntilClosed()) == .resourceExhausted)
            }
        }
        let metrics = try httpGet(try #require(server.adminAddress), "/metrics").body
        #expect(metric(metrics, "gridmon_decode_errors_total{kind=\"decodes_too_large\"}") == 3)
        #expect(server.logContains("decodes to more than 67108864 bytes"))
    }

    @Test func nonZeroFlagAndUnparseableProtobufGetInvalidArgument() throws {
        let server = try ServerProcess()
        try withBystander(server) {
            let flagged = try TestClient(server.address)
            try flagged.send(rawFrame([0x2A, 0x00], flag: 1))
            #expect(errorCode(try flagged.drainUntilClosed()) == .invalidArgument)
            let garbled = try TestClient(server.address)
            try garbled.send(rawFrame([0xFF, 0xFF, 0xFF, 0xFF]))
            #expect(errorCode(try garbled.drainUntilClosed()) == .invalidArgument)
        }
        #expect(server.logContains("kind=bad_flag"))
        #expect(server.logContains("kind=unparseable_protobuf"))
    }

    @Test func unknownMessageGetsUnimplemented() throws {
        let server = try ServerProcess()
        try withBystander(server) {
            let client = try TestClient(server.address)
            try client.send(rawFrame([0x9A, 0x06, 0x00]))  // Frame field 99
            #expect(errorCode(try client.drainUntilClosed()) == .unimplemented)
        }
    }

    @Test func samplesBeforeHelloAndUnknownStreamGetNotFound() throws {
        let server = try ServerProcess()
        try withBystander(server) {
            let client = try TestClient(server.address)
            try client.send(batch(4, 1...2))
            guard case .error(let error)? = try client.receive() else { Issue.record("no error"); return }
            #expect(error.code == .notFound && error.streamID == 4)
            _ = try client.hello(node: "late", stream: 1)
            try client.send(batch(9, 1...2))
            guard case .error(let again)? = try client.receive() else { Issue.record("no error"); return }
            #expect(again.code == .notFound && again.streamID == 9)
        }
        #expect(server.stop() == 0)
        #expect(server.logContains("event=stopped samples=3"))  // only the bystander's
    }

    @Test func helloTwiceGetsFailedPrecondition() throws {
        let server = try ServerProcess()
        try withBystander(server) {
            let client = try TestClient(server.address)
            _ = try client.hello(node: "x", stream: 1)
            try client.send(.hello(Hello(nodeID: "y", streamID: 1)))
            #expect(errorCode(try client.drainUntilClosed()) == .failedPrecondition)
        }
    }

    @Test func truncatedFrameThenCloseLosesNothingAccepted() throws {
        let server = try ServerProcess()
        do {
            let client = try TestClient(server.address)
            _ = try client.hello(node: "t", stream: 1)
            try client.send(batch(1, 1...4))
            guard case .ack(let ack)? = try client.receive() else { Issue.record("no ack"); return }
            #expect(ack.durableSeq == 4)
            var half: [UInt8] = []
            client.encoder.appendFrame(batch(1, 5...9), to: &half)
            try client.send(Array(half.prefix(half.count / 2)))
        }
        let again = try TestClient(server.address)
        #expect(try again.hello(node: "t", stream: 1).durableSeq == 4)
        #expect(server.stop() == 0)
        #expect(server.logContains("event=stopped samples=4"))
    }

    @Test func bytesOneAtATimeStillWork() throws {
        let server = try ServerProcess()
        let client = try TestClient(server.address, sendPreface: false)
        var bytes = Preface.bytes
        client.encoder.appendFrame(.hello(Hello(nodeID: "slow", streamID: 1)), to: &bytes)
        client.encoder.appendFrame(batch(1, 1...3), to: &bytes)
        for byte in bytes { try client.send([byte]) }
        var durable: UInt64 = 0
        while durable < 3, let message = try client.receive() {
            if case .ack(let ack) = message { durable = ack.durableSeq }
        }
        #expect(durable == 3)
    }

    @Test func silentClientIsClosedAfterTheHandshakeTimeout() throws {
        let server = try ServerProcess(["--insecure-no-auth", "--handshake-timeout-ms", "300"])
        let client = try TestClient(server.address, sendPreface: false)
        #expect(errorCode(try client.drainUntilClosed(timeout: 5000)) == .deadlineExceeded)
        #expect(client.closedByPeer)
    }

    @Test func clientThatNeverReadsIsNotBufferedWithoutBound() throws {
        let server = try ServerProcess()
        try withBystander(server) {
            let client = try TestClient(server.address)
            _ = try client.hello(node: "deaf", stream: 1)
            // Pings make the server write; the client never reads. Send until the kernel
            // buffers fill and the server stops reading us (send would block for 2 s).
            var sent = 0
            var frame: [UInt8] = []
            for i in 0..<2000 { client.encoder.appendFrame(.ping(Ping(nonce: UInt64(i))), to: &frame) }
            let deadline = Date().addingTimeInterval(20)
            while Date() < deadline {
                var pfd = pollfd(fd: client.fd, events: Int16(POLLOUT), revents: 0)
                if poll(&pfd, 1, 2000) == 0 { break }  // server stopped reading: backpressure
                _ = try? frame.withUnsafeBytes { try Socket.write(client.fd, $0) }
                sent += 1
            }
            #expect(Date() < deadline, "the server kept reading from a peer that never reads")
        }
        #expect(!server.log.contains("event=stopped"))
    }

    @Test func configuredLimitsAreEnforcedCountedAndLogged() throws {
        let server = try ServerProcess(["--insecure-no-auth", "--max-connections", "2", "--max-frame-bytes", "256", "--max-streams", "1"])
        let first = try TestClient(server.address)
        _ = try first.hello(node: "a", stream: 1)
        // One stream per connection: the second Hello on it is refused, the connection stays.
        try first.send(.hello(Hello(nodeID: "b", streamID: 2)))
        guard case .error(let refused)? = try first.receive() else { Issue.record("no error"); return }
        #expect(refused.code == .resourceExhausted && refused.streamID == 2)
        // A frame over --max-frame-bytes: RESOURCE_EXHAUSTED and close.
        let second = try TestClient(server.address)
        try second.send(batch(1, 1...10))  // ~10 samples × ~95 bytes > 256
        #expect(errorCode(try second.drainUntilClosed()) == .resourceExhausted)
        // Two connections open (first, and a third one now): a fourth is refused at accept.
        let third = try TestClient(server.address)
        _ = try third.hello(node: "c", stream: 1)
        let fourth = try TestClient(server.address)
        _ = try fourth.drainUntilClosed()
        #expect(fourth.closedByPeer)
        let metrics = try httpGet(try #require(server.adminAddress), "/metrics").body
        #expect(metric(metrics, "gridmon_connections_rejected_total") == 1)
        #expect(metric(metrics, "gridmon_protocol_violations_total{reason=\"max_streams\"}") == 1)
        #expect(metric(metrics, "gridmon_decode_errors_total{kind=\"oversize_frame\"}") == 1)
        #expect(server.logContains("what=max_connections"))
        #expect(server.logContains("what=max_streams"))
        // The first connection still flows.
        try first.send(batch(1, 1...2))
        var durable: UInt64 = 0
        while durable < 2, case .ack(let ack)? = try first.receive() { durable = ack.durableSeq }
        #expect(durable == 2)
    }

    @Test func athousandConcurrentConnections() throws {
        let server = try ServerProcess()
        var clients: [TestClient] = []
        for i in 0..<1000 {
            let client = try TestClient(server.address)
            try client.send(.hello(Hello(nodeID: "n\(i)", streamID: 1)), batch(1, 1...2))
            clients.append(client)
        }
        var acked = 0
        for client in clients {
            while let message = try client.receive() {
                if case .ack(let ack) = message, ack.durableSeq == 2 { acked += 1; break }
            }
        }
        #expect(acked == 1000)
    }
}
