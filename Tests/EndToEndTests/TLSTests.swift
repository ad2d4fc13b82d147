import Foundation
import Glibc
import GridMonPosix
import GridMonWire
import Testing

/// Certificates for one test run, made with the `openssl` CLI in a temporary directory: a CA,
/// a server certificate for localhost and 127.0.0.1, one already expired, one from another
/// CA, and a client certificate for mutual TLS.
final class TestCertificates {
    let directory = tempPath("tls")
    var ca: String { directory + "/ca.pem" }
    var otherCA: String { directory + "/other-ca.pem" }

    init() throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try run(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=GridMon Test CA"])
        try run(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "other-ca.key", "-out", "other-ca.pem", "-days", "2", "-subj", "/CN=Other CA"])
        try "subjectAltName=DNS:localhost,IP:127.0.0.1\n".write(toFile: directory + "/san.ext", atomically: true, encoding: .utf8)
        try issue("server", ca: "ca", days: "2", san: true)
        try issue("expired", ca: "ca", days: "0", san: true)
        try issue("foreign", ca: "other-ca", days: "2", san: true)
        try issue("client", ca: "ca", days: "2", san: false)
        try issue("acme", ca: "ca", days: "2", san: false)
        usleep(1_100_000)  // "expired" is valid for the second it was made in
    }

    deinit { try? FileManager.default.removeItem(atPath: directory) }

    func certificate(_ name: String) -> String { directory + "/\(name).pem" }
    func key(_ name: String) -> String { directory + "/\(name).key" }

    private func issue(_ name: String, ca: String, days: String, san: Bool) throws {
        try run(["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "\(name).key", "-out", "\(name).csr", "-subj", "/CN=\(name == "client" ? "agent-7" : name == "acme" ? "acme" : "localhost")"])
        try run(["x509", "-req", "-in", "\(name).csr", "-CA", "\(ca).pem", "-CAkey", "\(ca).key", "-CAcreateserial", "-out", "\(name).pem",
                 "-days", days] + (san ? ["-extfile", "san.ext"] : []))
        chmod(key(name), 0o600)
    }

    private func run(_ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw HarnessError("openssl \(arguments.joined(separator: " ")) failed") }
    }
}

/// TLS on the agent link, through the real binaries (issue #13).
@Suite(.serialized) struct TLSTests {
    private func tlsServer(_ certs: TestCertificates, _ name: String = "server", _ extra: [String] = []) throws -> ServerProcess {
        try ServerProcess(["--insecure-no-auth", "--tls-cert", certs.certificate(name), "--tls-key", certs.key(name)] + extra)
    }

    @Test func anAgentStreamsOverTLSAndOpensslSClientTalksToThePort() throws {
        let certs = try TestCertificates()
        let server = try tlsServer(certs)
        #expect(server.log.contains("transport=TLS"))
        let agent = try AgentProcess(["--server", "localhost:\(server.address.port)", "--tls", "--tls-ca", certs.ca,
                                      "--node-id", "tls-1", "--interval", "50ms"])
        #expect(eventually { durableSeq(server, "tls-1") >= 10 }, "\(agent.log)")
        #expect(agent.log.contains("event=tls_established") && agent.log.contains("version=TLSv1.3"))
        #expect(agent.stop() == 0)
        #expect(agent.events("agent_stopped").first?.contains("unacked=0") == true)

        let text = try runTool("/usr/bin/openssl", ["s_client", "-connect", "127.0.0.1:\(server.address.port)", "-CAfile", certs.ca,
                                                    "-verify_return_error", "-brief"]).output
        #expect(text.contains("Verification: OK") && text.contains("TLSv1.3"), "\(text)")

        // Clients that hang up right after (or during) the handshake, many times a second: the
        // server once died of SIGPIPE on the first (OpenSSL writes with write(2)).
        _ = try runTool("/usr/bin/openssl", ["s_time", "-connect", "127.0.0.1:\(server.address.port)", "-CAfile", certs.ca, "-new", "-time", "1"])
        #expect(server.process.isRunning)
        let after = try AgentProcess(["--server", "localhost:\(server.address.port)", "--tls", "--tls-ca", certs.ca,
                                      "--node-id", "tls-2", "--interval", "50ms"])
        #expect(eventually { durableSeq(server, "tls-2") >= 3 })
        #expect(after.stop() == 0)
    }

    @Test func everyMismatchIsAClearErrorOnBothSidesAndTheServerKeepsServing() throws {
        let certs = try TestCertificates()
        let server = try tlsServer(certs)
        let expired = try tlsServer(certs, "expired")
        let plain = try ServerProcess()
        let port = server.address.port
        let cases: [(AgentProcess, String)] = [
            // The system's store does not know the test CA.
            (try AgentProcess(["--server", "127.0.0.1:\(port)", "--tls", "--node-id", "x1", "--interval", "100ms"]),
             "unable to get local issuer certificate"),
            (try AgentProcess(["--server", "127.0.0.1:\(port)", "--tls", "--tls-ca", certs.otherCA, "--node-id", "x2", "--interval", "100ms"]),
             "unable to get local issuer certificate"),
            (try AgentProcess(["--server", "127.0.0.1:\(port)", "--tls", "--tls-ca", certs.ca, "--tls-server-name", "db.example.net",
                               "--node-id", "x3", "--interval", "100ms"]), "hostname mismatch"),
            (try AgentProcess(["--server", "127.0.0.1:\(expired.address.port)", "--tls", "--tls-ca", certs.ca, "--node-id", "x4",
                               "--interval", "100ms"]), "certificate has expired"),
            (try AgentProcess(["--server", "127.0.0.1:\(port)", "--node-id", "x5", "--interval", "100ms"]),
             "this port speaks TLS: start the agent with --tls"),
            (try AgentProcess(["--server", "\(plain.address)", "--tls", "--tls-ca", certs.ca, "--node-id", "x6", "--interval", "100ms"]),
             "the server answered without TLS"),
        ]
        for (agent, message) in cases {
            #expect(agent.logContains(message), "\(message): \(agent.log.suffix(800))")
            agent.stop()
        }
        #expect(server.logContains("tls_handshake_failed") && server.logContains("plain_on_tls_port"), "\(server.log.suffix(3000))")
        #expect(plain.logContains("a TLS record: the peer speaks TLS and this side does not"))
        for node in ["x1", "x2", "x3", "x5"] { #expect(nodeInfo(server, node) == nil) }
        // Nothing crashed: a good agent still streams.
        let good = try AgentProcess(["--server", "127.0.0.1:\(port)", "--tls", "--tls-ca", certs.ca, "--node-id", "ok", "--interval", "50ms"])
        #expect(eventually { durableSeq(server, "ok") >= 5 })
        #expect(good.stop() == 0)
        let metrics = try httpGet(try #require(server.adminAddress), "/metrics").body
        #expect((metric(metrics, "gridmon_protocol_violations_total{reason=\"tls_handshake_failed\"}") ?? 0) >= 3)
    }

    @Test func mutualTLSRequiresAClientCertificateFromTheCA() throws {
        let certs = try TestCertificates()
        let server = try tlsServer(certs, "server", ["--tls-client-ca", certs.ca])
        let port = server.address.port
        let anonymous = try AgentProcess(["--server", "127.0.0.1:\(port)", "--tls", "--tls-ca", certs.ca, "--node-id", "anon", "--interval", "100ms"])
        #expect(server.logContains("peer did not return a certificate"), "\(server.log.suffix(1000))")
        anonymous.stop()
        #expect(nodeInfo(server, "anon") == nil)
        let foreign = try AgentProcess(["--server", "127.0.0.1:\(port)", "--tls", "--tls-ca", certs.ca, "--tls-cert", certs.certificate("foreign"),
                                        "--tls-key", certs.key("foreign"), "--node-id", "foreign", "--interval", "100ms"])
        // The server's log line is rate-limited (one per 10 s per reason): count refusals instead.
        let admin = try #require(server.adminAddress)
        #expect(eventually {
            let metrics = (try? httpGet(admin, "/metrics").body) ?? ""
            return (metric(metrics, "gridmon_protocol_violations_total{reason=\"tls_handshake_failed\"}") ?? 0) >= 2
        })
        #expect(foreign.logContains("event=tls_handshake_failed") || foreign.logContains("event=connection_lost"))
        foreign.stop()
        #expect(nodeInfo(server, "foreign") == nil)
        let member = try AgentProcess(["--server", "127.0.0.1:\(port)", "--tls", "--tls-ca", certs.ca, "--tls-cert", certs.certificate("client"),
                                       "--tls-key", certs.key("client"), "--node-id", "member", "--interval", "50ms"])
        #expect(eventually { durableSeq(server, "member") >= 5 }, "\(member.log)")
        #expect(member.stop() == 0)
    }

    @Test func aClientCertificateCanNameTheTenantInsteadOfOrBesideAToken() throws {
        let certs = try TestCertificates()
        let tokens = tempPath("tokens")
        defer { unlink(tokens) }
        try writeSecret("acme-token acme\nbeta-token beta\n", to: tokens)
        let server = try ServerProcess(["--tls-cert", certs.certificate("server"), "--tls-key", certs.key("server"),
                                        "--tls-client-ca", certs.ca, "--tls-tenant-from-certificate", "--tokens-file", tokens])
        #expect(server.log.contains("client certificates name tenants"))
        let port = server.address.port
        func agent(_ node: String, _ extra: [String]) throws -> AgentProcess {
            try AgentProcess(["--server", "127.0.0.1:\(port)", "--tls", "--tls-ca", certs.ca, "--tls-cert", certs.certificate("acme"),
                              "--tls-key", certs.key("acme"), "--node-id", node, "--interval", "50ms"] + extra)
        }
        // No token: the certificate's CN is the tenant.
        let bare = try agent("cert-only", [])
        #expect(eventually { durableSeq(server, "cert-only") >= 3 }, "\(bare.log)")
        #expect(nodeInfo(server, "cert-only")?["tenant"] as? String == "acme")
        #expect(bare.stop() == 0)
        // A token that agrees is fine; one of another tenant is refused, naming why.
        let agreeing = try agent("both", ["--token", "acme-token"])
        #expect(eventually { durableSeq(server, "both") >= 3 })
        #expect(agreeing.stop() == 0)
        let other = try agent("mismatch", ["--token", "beta-token"])
        #expect(other.logContains("names another tenant than its client certificate (acme)"))
        other.stop()
        #expect(nodeInfo(server, "mismatch") == nil)
    }

    @Test func theMinimumVersionIsEnforced() throws {
        let certs = try TestCertificates()
        let server = try tlsServer(certs, "server", ["--tls-min-version", "1.3"])
        func handshake(_ version: String) throws -> String {
            try runTool("/usr/bin/openssl", ["s_client", "-connect", "127.0.0.1:\(server.address.port)", "-CAfile", certs.ca, version, "-brief"]).output
        }
        #expect(try handshake("-tls1_3").contains("Protocol version: TLSv1.3"))
        #expect(try !handshake("-tls1_2").contains("Protocol version"))
        #expect(server.process.isRunning)
    }

    /// The server meets a plain agent's bytes already waiting at accept (what load does by
    /// chance: a CI flake). It once wrote its preface through TLS right then, which ran the
    /// handshake on those bytes and closed without the Error naming the fix.
    @Test func aPlainAgentWhoseBytesArriveBeforeTheAcceptIsToldToUseTLS() throws {
        let certs = try TestCertificates()
        let server = try tlsServer(certs, "server", ["--threads", "1"])
        // Stopped, the server accepts nothing: the connection and its first bytes wait in the kernel.
        let pid = server.process.processIdentifier
        kill(pid, SIGSTOP)
        let client: TestClient
        do {
            client = try TestClient(server.address)
            try client.send(.hello(Hello(nodeID: "early", streamID: 1)))
            usleep(100_000)
        } catch {
            kill(pid, SIGCONT)
            throw error
        }
        kill(pid, SIGCONT)
        let messages = try client.drainUntilClosed()
        let told = messages.contains { if case .error(let error) = $0 { error.message.contains("this port speaks TLS") } else { false } }
        #expect(told, "\(messages) \(server.log.suffix(1500))")
    }

    @Test func aStalledHandshakeIsClosedByTheHandshakeTimeout() throws {
        let certs = try TestCertificates()
        let server = try tlsServer(certs, "server", ["--handshake-timeout-ms", "300"])
        // Half a ClientHello record header, then nothing: a slowloris on the TLS port.
        let client = try TestClient(server.address, sendPreface: false)
        try client.send([0x16, 0x03, 0x01])
        // readRaw returns when the server closes, or after 5 s of silence.
        var started = Date()
        _ = try client.readRaw(timeout: 5000)
        #expect(Date().timeIntervalSince(started) < 3)
        // And one that never sends a byte.
        let silent = try TestClient(server.address, sendPreface: false)
        started = Date()
        _ = try silent.readRaw(timeout: 5000)
        #expect(Date().timeIntervalSince(started) < 3)
        #expect(server.logContains("handshake_timeout"))
    }

    @Test func theAgentResumesItsSessionOnAReconnect() throws {
        let certs = try TestCertificates()
        let server = try tlsServer(certs)
        // The first server is down: every --failback the agent leaves the second to try it, and
        // comes back to the second by resuming its session.
        let down = try ReservedPort()  // held: no other suite's server can take it
        let agent = try AgentProcess(["--server", "127.0.0.1:\(down.port),localhost:\(server.address.port)", "--tls", "--tls-ca", certs.ca,
                                      "--node-id", "resumer", "--interval", "50ms", "--failback", "1s"])
        #expect(agent.logContains("resumed=true", timeout: 15), "\(agent.log.suffix(1500))")
        #expect(agent.log.contains("resumed=false"))  // the first handshake was a full one
        let before = durableSeq(server, "resumer")
        #expect(eventually { durableSeq(server, "resumer") > before + 10 }, "before \(before)\n\(agent.log.suffix(3000))\n\(server.log.suffix(3000))")
        #expect(agent.stop() == 0)
        withExtendedLifetime(down) {}
    }

    @Test func theAdminPortServesHTTPSWithTheSameCertificate() throws {
        let certs = try TestCertificates()
        let adminTokens = tempPath("admin-tokens")
        defer { unlink(adminTokens) }
        try writeSecret("ops *\n", to: adminTokens)
        let server = try tlsServer(certs, "server", ["--admin-tls", "--admin-tokens-file", adminTokens])
        let admin = try #require(server.adminAddress)
        #expect(server.log.contains("transport=HTTPS"))
        func curl(_ arguments: [String]) throws -> (status: Int32, out: String) {
            let run = try runTool("/usr/bin/curl", ["-sS", "--max-time", "10"] + arguments)
            return (run.status, run.output)
        }
        let metrics = try curl(["--cacert", certs.ca, "https://localhost:\(admin.port)/metrics"])
        #expect(metrics.status == 0 && metrics.out.contains("gridmon_connections_accepted_total"), "\(metrics.out)")
        let nodes = try curl(["--cacert", certs.ca, "-H", "Authorization: Bearer ops", "-w", "%{http_code}", "https://localhost:\(admin.port)/api/v1/nodes"])
        #expect(nodes.out.hasSuffix("200"), "\(nodes.out)")
        let refused = try curl(["--cacert", certs.ca, "-o", "/dev/null", "-w", "%{http_code}", "https://localhost:\(admin.port)/api/v1/nodes"])
        #expect(refused.out == "401")
        // Plain HTTP to the HTTPS port gets no answer, and the port keeps serving.
        #expect(try curl(["http://127.0.0.1:\(admin.port)/metrics"]).status != 0)
        #expect(try curl(["--cacert", certs.ca, "https://localhost:\(admin.port)/healthz"]).out == "ok\n")
    }

    @Test func sighupLoadsANewCertificateWithoutDroppingConnections() throws {
        let certs = try TestCertificates()
        let certificate = tempPath("cert.pem")
        let key = tempPath("key.pem")
        defer { unlink(certificate); unlink(key) }
        try FileManager.default.copyItem(atPath: certs.certificate("server"), toPath: certificate)
        try FileManager.default.copyItem(atPath: certs.key("server"), toPath: key)
        chmod(key, 0o600)
        let server = try ServerProcess(["--insecure-no-auth", "--tls-cert", certificate, "--tls-key", key])
        let port = server.address.port
        let old = try AgentProcess(["--server", "127.0.0.1:\(port)", "--tls", "--tls-ca", certs.ca, "--node-id", "old", "--interval", "50ms"])
        #expect(eventually { durableSeq(server, "old") >= 5 })
        // Rotate to a certificate from another CA.
        unlink(certificate); unlink(key)
        try FileManager.default.copyItem(atPath: certs.certificate("foreign"), toPath: certificate)
        try FileManager.default.copyItem(atPath: certs.key("foreign"), toPath: key)
        chmod(key, 0o600)
        kill(server.process.processIdentifier, SIGHUP)
        #expect(server.logContains("event=tls_reloaded"))
        let rotated = try AgentProcess(["--server", "127.0.0.1:\(port)", "--tls", "--tls-ca", certs.otherCA, "--node-id", "new", "--interval", "50ms"])
        #expect(eventually { durableSeq(server, "new") >= 5 }, "\(rotated.log)")
        // The connection made before the reload streams on.
        let before = durableSeq(server, "old")
        #expect(eventually { durableSeq(server, "old") >= before + 10 })
        #expect(old.events("connection_lost").isEmpty)
        #expect(old.stop() == 0 && rotated.stop() == 0)
    }

    @Test func sessionsResumeAndTheFloodClientMeasuresTLS() throws {
        let certs = try TestCertificates()
        let server = try tlsServer(certs)
        // openssl s_client saves the server's ticket, and the next connection resumes with it.
        let session = tempPath("session.pem")
        defer { unlink(session) }
        func sClient(_ extra: [String]) throws -> String {
            // The preface keeps the connection up a second, long enough for TLS 1.3's tickets.
            try runTool("/bin/sh", ["-c", "(printf 'GRIDMON\\001'; sleep 1) | openssl s_client -connect 127.0.0.1:\(server.address.port) -CAfile \(certs.ca) "
                                    + extra.joined(separator: " ")]).output
        }
        #expect(try sClient(["-sess_out", session]).contains("New, TLSv1.3"))
        #expect(try sClient(["-sess_in", session]).contains("Reused, TLSv1.3"))

        let run = try runBinary("gridmon-flood", ["--target", "\(server.address)", "--tls", "--tls-ca", certs.ca, "--tls-server-name", "localhost",
                                                  "--connections", "4", "--streams", "2", "--samples", "20000", "--batch", "64", "--json", "--quiet"])
        #expect(run.status == 0, "\(run.stderr)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data((run.stdout.split(separator: "\n").first ?? "").utf8)) as? [String: Any])
        #expect(report["samples_acked"] as? Int == 20000)
        #expect((report["tls"] as? [String: Any])?["handshakes"] as? Int == 4)

        // Many small frames on many connections: records OpenSSL read ahead raise no epoll
        // event, and a connection whose reads yielded with some held once stalled for good.
        let small = try runBinary("gridmon-flood", ["--target", "\(server.address)", "--tls", "--tls-ca", certs.ca, "--tls-server-name", "localhost",
                                                    "--connections", "100", "--samples", "100000", "--batch", "1", "--json", "--quiet"])
        let smallReport = try #require(try JSONSerialization.jsonObject(with: Data((small.stdout.split(separator: "\n").first ?? "").utf8)) as? [String: Any])
        #expect(smallReport["samples_acked"] as? Int == 100_000, "\(small.stdout)")
    }
}
