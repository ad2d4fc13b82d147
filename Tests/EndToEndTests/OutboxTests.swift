import Foundation
import Glibc
import GridMonWire
import Testing

/// The embedded store: the server's durable outbox, through kills and damage.
@Suite(.serialized) struct ServerOutboxTests {
    private func dataDir() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("gridmon-store-\(UUID())").path
    }

    private func ackedThrough(_ client: TestClient, _ last: UInt64) throws -> UInt64 {
        var durable: UInt64 = 0
        while durable < last, let message = try client.receive() { if case .ack(let ack) = message { durable = ack.durableSeq } }
        return durable
    }

    @Test func everyAckedSampleSurvivesASigkill() throws {
        let dir = dataDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        do {
            let server = try ServerProcess(["--insecure-no-auth"], dataDir: dir)
            let client = try TestClient(server.address)
            _ = try client.hello(node: "db-1", stream: 1)
            try client.send(batch(1, 1...500))
            #expect(try ackedThrough(client, 500) == 500)
            #expect(server.stop(signal: SIGKILL) == SIGKILL)
        }
        let server = try ServerProcess(["--insecure-no-auth"], dataDir: dir)
        #expect(server.logContains("event=outbox_opened"))
        let client = try TestClient(server.address)
        #expect(try client.hello(node: "db-1", stream: 1).durableSeq == 500)
        let metrics = try httpGet(try #require(server.adminAddress), "/metrics").body
        #expect((metric(metrics, "gridmon_outbox_bytes") ?? 0) > 0)
        // The first server committed at least once; this one has not been sent anything yet.
        #expect(metric(metrics, "gridmon_sink_commit_seconds_count") == 0)
        try client.send(batch(1, 501...510))
        #expect(try ackedThrough(client, 510) == 510)
        let after = try httpGet(try #require(server.adminAddress), "/metrics").body
        #expect((metric(after, "gridmon_sink_commit_seconds_count") ?? 0) >= 1)
        #expect(after.contains("gridmon_sink_commit_seconds_bucket{le=\"+Inf\"}"))
    }

    @Test func aTornOutboxTailIsCutAndTheServerStarts() throws {
        let dir = dataDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        do {
            let server = try ServerProcess(["--insecure-no-auth"], dataDir: dir)
            let client = try TestClient(server.address)
            _ = try client.hello(node: "web-2", stream: 1)
            try client.send(batch(1, 1...50))
            #expect(try ackedThrough(client, 50) == 50)
            #expect(server.stop(signal: SIGTERM) == 0)
        }
        // A crash mid-write: half a record at the end of the newest segment.
        let segments = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".seg") }.sorted()
        let handle = try #require(FileHandle(forWritingAtPath: dir + "/" + segments.last!))
        handle.seekToEndOfFile()
        handle.write(Data([0x00, 0x10, 0x00, 0x00, 1, 2, 3, 4, 5, 6]))
        handle.closeFile()

        let server = try ServerProcess(["--insecure-no-auth"], dataDir: dir)
        #expect(server.logContains("truncated_bytes=10"))
        let client = try TestClient(server.address)
        #expect(try client.hello(node: "web-2", stream: 1).durableSeq == 50)
        try client.send(batch(1, 51...60))
        #expect(try ackedThrough(client, 60) == 60)
    }

    @Test func aCorruptSegmentIsQuarantinedAndReported() throws {
        let dir = dataDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        do {
            let server = try ServerProcess(["--insecure-no-auth"], dataDir: dir)
            let client = try TestClient(server.address)
            _ = try client.hello(node: "app-3", stream: 1)
            for first in stride(from: UInt64(1), through: 91, by: 10) {
                try client.send(batch(1, first...(first + 9)))
                _ = try ackedThrough(client, first + 9)
            }
            #expect(server.stop(signal: SIGTERM) == 0)
        }
        let segment = try #require(try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".seg") }.sorted().first)
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: dir + "/" + segment)))
        bytes[30] ^= 0xFF  // inside the first record, with more records after it
        try Data(bytes).write(to: URL(fileURLWithPath: dir + "/" + segment))

        let server = try ServerProcess(["--insecure-no-auth"], dataDir: dir)
        #expect(server.logContains("event=outbox_segment_quarantined"))
        #expect(FileManager.default.fileExists(atPath: dir + "/" + segment + ".quarantined"))
        let client = try TestClient(server.address)
        _ = try client.hello(node: "app-3", stream: 1)
        try client.send(batch(1, 101...101))
        #expect(try ackedThrough(client, 101) == 101)
    }
}
