import Foundation
import Glibc
import GridMonPosix
import GridMonStore
import GridMonWire
import Testing

/// The embedded store: the server's durable outbox, through kills and damage.
@Suite(.serialized) struct ServerOutboxTests {
    private func dataDir() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("gridmon-store-\(UUID())").path
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

    /// Between small commits the server lays zeros down ahead of the records (a commit's
    /// fdatasync then writes data only, not the file's size: issue #17); a clean stop cuts
    /// them off, so a closed segment is exactly its records.
    @Test func theSegmentBeingWrittenHasZerosAheadUntilACleanStop() throws {
        let dir = dataDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let server = try ServerProcess(["--insecure-no-auth"], dataDir: dir)
        let client = try TestClient(server.address)
        _ = try client.hello(node: "ahead", stream: 1)
        try client.send(batch(1, 1...20))
        #expect(try ackedThrough(client, 20) == 20)
        let name = try #require(try FileManager.default.contentsOfDirectory(atPath: dir).first { $0.hasSuffix(".seg") })
        let segment = dir + "/" + name
        var ahead = 0
        for _ in 0..<200 where ahead < 1 << 20 {  // laid down right after the commit: wait up to 4 s
            let bytes = try Files.read(segment)
            ahead = bytes.count - OutboxSegment.scan(bytes).validLength
            if ahead < 1 << 20 { usleep(20_000) }
        }
        #expect(ahead >= 1 << 20, "\(ahead) bytes of zeros past the records")
        #expect(server.stop(signal: SIGTERM) == 0)
        let after = try Files.read(segment)
        let scan = OutboxSegment.scan(after)
        #expect(scan.damage == .none && scan.validLength == after.count && scan.payloads.count >= 1)
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

@Suite(.serialized) struct ExportTests {
    @Test func exportPrintsTheStoreAsLineProtocolFilteredByNodeAndTime() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gridmon-export-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        do {
            let server = try ServerProcess(["--insecure-no-auth"], dataDir: dir)
            let client = try TestClient(server.address)
            _ = try client.hello(node: "n1", stream: 1)
            _ = try client.hello(node: "n2", stream: 2)
            // batch(): sample seq s has timestamp 1_700_000_000 + s seconds.
            try client.send(batch(1, 1...30), batch(2, 1...20))
            var acked: [UInt32: UInt64] = [:]
            while acked[1] != 30 || acked[2] != 20, case .ack(let ack)? = try client.receive() { acked[ack.streamID] = ack.durableSeq }
            #expect(server.stop(signal: SIGTERM) == 0)
        }
        let all = try runBinary("gridmon-stream-server", ["export", "--data-dir", dir])
        #expect(all.status == 0)
        let lines = all.stdout.split(separator: "\n")
        #expect(lines.count == 50)
        #expect(lines.allSatisfy { $0.hasPrefix("system_metrics,host=n") && $0.contains(" cpu=") && $0.contains("anomaly_detected=") })
        let one = try runBinary("gridmon-stream-server", ["export", "--data-dir", dir, "--node", "n2"])
        #expect(one.stdout.split(separator: "\n").count == 20)
        #expect(one.stdout.split(separator: "\n").allSatisfy { $0.hasPrefix("system_metrics,host=n2,") })
        // Seconds 1_700_000_011 ..< 1_700_000_021: seqs 11...20 of both nodes.
        let window = try runBinary("gridmon-stream-server", ["export", "--data-dir", dir, "--since", "1700000011", "--until", "1700000021"])
        #expect(window.stdout.split(separator: "\n").count == 20)
        #expect(try runBinary("gridmon-stream-server", ["export", "--data-dir", dir + "/missing"]).status == 1)
    }
}
