import Foundation
import GridMonOutbox
import GridMonStore
import GridMonWire
import Testing

/// Upgrading over an outbox written by older releases (issue #17, item 2: record version 3
/// packs samples; versions 1 and 2 held line protocol as text).
extension InfluxTests {
    @Test func anOutboxOfOlderRecordVersionsIsRestoredExportedAndDelivered() throws {
        let dataDir = FileManager.default.temporaryDirectory.appendingPathComponent("gridmon-upgrade-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: dataDir) }
        try FileManager.default.createDirectory(atPath: dataDir, withIntermediateDirectories: true)
        // Version 1, byte for byte as the first releases wrote it: whole lines.
        let v1Lines = (1...3).map { "system_metrics,host=old-1,tenant=default cpu=1\($0).5,memory=40,disk=50,anomaly_detected=0i 170000000\($0)000000000\n" }.joined()
        var v1: [UInt8] = [1, 7, 0] + Array("default".utf8) + [5, 0] + Array("old-1".utf8)
        v1 += [3, 0, 0, 0, 0, 0, 0, 0] + [3, 0, 0, 0]
        let lines = Array(v1Lines.utf8)
        withUnsafeBytes(of: UInt32(lines.count).littleEndian) { v1 += $0 }
        v1 += lines
        // Version 2: the series key once, line tails as text.
        let v2 = OutboxBatch(tenant: "default", node: "old-2", highestSeq: 2, sampleCount: 2,
                             series: Array("system_metrics,host=old-2,tenant=default".utf8),
                             body: Array(" cpu=21.5,memory=40,disk=50,anomaly_detected=1i 1700000001000000000\n cpu=22.5,memory=40,disk=50,anomaly_detected=0i 1700000002000000000\n".utf8))
        do {
            let (outbox, _) = try Outbox.open(directory: dataDir)
            outbox.append(v1)
            outbox.append(v2.encode())
            _ = try outbox.commit()
        }

        // `export` prints both as they were written.
        let export = try runBinary("gridmon-stream-server", ["export", "--data-dir", dataDir])
        #expect(export.status == 0)
        #expect(export.stdout.contains("system_metrics,host=old-1,tenant=default cpu=12.5,memory=40,disk=50,anomaly_detected=0i 1700000002000000000"))
        #expect(export.stdout.contains("system_metrics,host=old-2,tenant=default cpu=22.5,memory=40,disk=50,anomaly_detected=0i 1700000002000000000"))

        let influx = try InfluxProcess()
        let server = try ServerProcess(["--insecure-no-auth", "--influx-url", "http://127.0.0.1:\(influx.port)", "--influx-create"],
                                       dataDir: dataDir)
        // Each node's durable seq is restored from the old records…
        let client = try TestClient(server.address)
        #expect(try client.hello(node: "old-1", stream: 1).durableSeq == 3)
        #expect(try client.hello(node: "old-2", stream: 2).durableSeq == 2)
        // …the old lines land, and new samples (version 3) follow them.
        try client.send(batch(2, 3...4))
        try ackedThrough(client, 2, 4)
        #expect(try influx.waitForCount("gridmon_default", 7) == 7)
        #expect(try influx.count("gridmon_default", where: "host = 'old-1'") == 3)
        #expect(try influx.count("gridmon_default", where: "host = 'old-2'") == 4)
        #expect(!server.logContains("outbox_undecodable_records") && !server.logContains("shipper_bad_record"))
    }
}
