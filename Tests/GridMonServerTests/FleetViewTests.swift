import Foundation
import GridMonCore
import GridMonDetect
import GridMonWire
import Testing
@testable import GridMonServer

private let second: Int64 = 1_000_000_000

@Suite struct ScoreTrailTests {
    @Test func keepsTheHighestScorePerFiveSecondsForFiveMinutesWithGapsAsNil() {
        var trail = ScoreTrail()
        #expect(trail.scores(nowNs: 0).isEmpty)
        trail.add(0.4, nowNs: 1000 * second)
        trail.add(1.3, nowNs: 1003 * second)  // same bucket: the higher one
        trail.add(0.2, nowNs: 1004 * second)
        trail.add(0.5, nowNs: 1010 * second)  // two buckets later: one empty between
        #expect(trail.scores(nowNs: 1012 * second) == [1.3, nil, 0.5])
        #expect(trail.scores(nowNs: 1026 * second) == [1.3, nil, 0.5, nil, nil, nil])  // quiet since: nil up to now
        trail.add(9.0, nowNs: 1030 * second)  // capped at 2.55
        #expect(trail.scores(nowNs: 1030 * second).last == 2.55)
        trail.add(0.1, nowNs: 1000 * second)  // a clock that stepped back changes nothing
        #expect(trail.values.count == 7)
        for t in stride(from: Int64(2000), to: 2400, by: 5) { trail.add(0.3, nowNs: t * second) }
        #expect(trail.values.count == ScoreTrail.buckets && trail.scores(nowNs: 2400 * second).count == ScoreTrail.buckets)
        #expect(trail.scores(nowNs: 5000 * second).allSatisfy { $0 == nil })
    }
}

@Suite struct FleetRoutesTests {
    private func table() -> NodeTable {
        let nodes = NodeTable(capacity: 100, perTenant: 100)
        for (tenant, node) in [("a", "quiet"), ("a", "busy"), ("b", "new"), ("a", "gone")] {
            nodes.restore(NodeKey(tenant: tenant, node: node), durableSeq: 1, nowNs: node == "gone" ? 1 : 100 * second)
        }
        return nodes
    }

    @Test func nodesInTroubleComeFirstAndATenantSeesOnlyItsOwn() throws {
        let nodes = table()
        let book = IncidentBook()
        book.record([.opened(Incident(id: 1, tenant: "a", node: "busy", startNs: 90 * second, endNs: nil, openedNs: 95 * second,
                                      peakScore: 1.4, flagged: 4, drivers: []))])
        let request = { (query: [String: String]) in
            FleetRoutes.respond(query, nodes: nodes, incidents: book, nowNs: 120 * second, head: false) { $0.node == "new" ? "learning" : "active" }
        }
        let body = String(decoding: request([:]), as: UTF8.self)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(body[body.range(of: "\r\n\r\n")!.upperBound...].utf8)) as? [String: Any])
        let list = try #require(json["nodes"] as? [[String: Any]])
        #expect(list.map { $0["node"] as? String } == ["busy", "gone", "new", "quiet"])
        #expect(list.map { $0["state"] as? String } == ["incident", "silent", "learning", "healthy"])
        #expect((json["states"] as? [String: Int]) == ["incident": 1, "silent": 1, "learning": 1, "healthy": 1])
        #expect((json["open"] as? [[String: Any]])?.first?["node"] as? String == "busy")
        let b = String(decoding: request(["tenant": "b"]), as: UTF8.self)
        #expect(b.contains("\"new\"") && !b.contains("\"busy\"") && !b.contains("\"quiet\""))
        #expect(String(decoding: request(["limit": "0"]), as: UTF8.self).hasPrefix("HTTP/1.1 400"))
    }
}
