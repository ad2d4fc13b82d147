import GridMonCore
import GridMonWire
import Testing
@testable import GridMonServer

/// The admin API's bearer tokens, on requests parsed from bytes (no sockets).
@Suite struct AdminAuthTests {
    private func request(_ path: String, token: String? = nil) throws -> HTTPRequestParser.Request {
        var parser = HTTPRequestParser()
        let text = "GET \(path) HTTP/1.1\r\nHost: x\r\n" + (token.map { "Authorization: Bearer \($0)\r\n" } ?? "") + "\r\n"
        return try #require(try Array(text.utf8).withUnsafeBytes { try parser.feed($0) })
    }

    private func answer(_ path: String, token: String? = nil, auth: AdminAuth, nodes: NodeTable) throws -> (status: Int, text: String) {
        var refused: [Int] = []
        let bytes = AdminRoutes.respond(to: try request(path, token: token), metrics: { "gridmon_up 1\n" }, notReady: nil,
                                        nodes: nodes, auth: auth, onRefused: { refused.append($0) })
        let text = String(decoding: bytes, as: UTF8.self)
        let status = Int(text.split(separator: " ")[1])!
        #expect(status < 400 ? refused.isEmpty : refused == [status])
        return (status, text)
    }

    private func fleet() -> NodeTable {
        let nodes = NodeTable(capacity: 100, perTenant: 100)
        for (tenant, node) in [("acme", "a1"), ("acme", "a2"), ("beta", "b1")] {
            _ = nodes.claim(NodeKey(tenant: tenant, node: node), labels: [], by: StreamOwner(worker: 0, connection: 1), nowNs: 0)
        }
        return nodes
    }

    @Test func tokensScopeTheAPIAndLeaveProbesOpen() throws {
        let auth = try AdminAuth(parsing: "acme-reader acme\nops-admin *   # every tenant\n")
        let nodes = fleet()
        // Probes and scrapers need no token.
        #expect(try answer("/metrics", auth: auth, nodes: nodes).status == 200)
        #expect(try answer("/healthz", auth: auth, nodes: nodes).status == 200)
        // The API does: none, a wrong one, a malformed header.
        let none = try answer("/api/v1/nodes", auth: auth, nodes: nodes)
        #expect(none.status == 401 && none.text.contains("WWW-Authenticate: Bearer realm=\"gridmon\""))
        #expect(try answer("/api/v1/nodes", token: "guess", auth: auth, nodes: nodes).status == 401)
        #expect(try answer("/api/v1/incidents", token: "", auth: auth, nodes: nodes).status == 401)
        // A tenant's token sees its own nodes only, and may not ask for another tenant's.
        let acme = try answer("/api/v1/nodes", token: "acme-reader", auth: auth, nodes: nodes)
        #expect(acme.status == 200 && acme.text.contains("\"a1\"") && acme.text.contains("\"a2\"") && !acme.text.contains("\"b1\""))
        #expect(try answer("/api/v1/nodes?tenant=beta", token: "acme-reader", auth: auth, nodes: nodes).status == 403)
        #expect(try answer("/api/v1/nodes?tenant=acme", token: "acme-reader", auth: auth, nodes: nodes).status == 200)
        // The every-tenant token sees all, or the tenant it asks for.
        let all = try answer("/api/v1/nodes", token: "ops-admin", auth: auth, nodes: nodes)
        #expect(all.text.contains("\"a1\"") && all.text.contains("\"b1\""))
        let beta = try answer("/api/v1/nodes?tenant=beta", token: "ops-admin", auth: auth, nodes: nodes)
        #expect(beta.text.contains("\"b1\"") && !beta.text.contains("\"a1\""))
    }

    @Test func withoutATokensFileTheAPIIsOpenAsBefore() throws {
        let open = try answer("/api/v1/nodes", auth: .open, nodes: fleet())
        #expect(open.status == 200 && open.text.contains("\"b1\""))
    }
}
