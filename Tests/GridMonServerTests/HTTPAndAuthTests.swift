import Testing
@testable import GridMonServer

private func parse(_ text: String, chunk: Int = 1 << 20) throws -> HTTPRequestParser.Request? {
    var parser = HTTPRequestParser()
    let bytes = Array(text.utf8)
    var index = 0
    while index < bytes.count {
        let end = min(bytes.count, index + chunk)
        if let request = try bytes[index..<end].withUnsafeBytes({ try parser.feed($0) }) { return request }
        index = end
    }
    return nil
}

@Suite struct HTTPRequestParserTests {
    @Test(arguments: [1, 3, 1000])
    func parsesInAnyChunking(chunk: Int) throws {
        let request = try parse("GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\nAccept:  text/plain \r\n\r\n", chunk: chunk)
        #expect(request?.method == "GET" && request?.path == "/metrics" && request?.query == "x=1")
        #expect(request?.header("accept") == "text/plain")
    }

    @Test func incompleteHeadNeedsMore() throws {
        #expect(try parse("GET / HTTP/1.1\r\nHost: a\r\n") == nil)
    }

    @Test func refusesWhatItDoesNotServe() {
        #expect(throws: HTTPRequestParser.Failure(status: 400, reason: "malformed request line")) { try parse("HELLO\r\n\r\n") }
        #expect(throws: HTTPRequestParser.Failure(status: 505, reason: "only HTTP/1.0 and 1.1")) { try parse("GET / HTTP/2\r\n\r\n") }
        #expect(throws: HTTPRequestParser.Failure(status: 413, reason: "request bodies are not accepted")) {
            try parse("POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc")
        }
        #expect(throws: HTTPRequestParser.Failure(status: 431, reason: "request head over 16384 bytes")) {
            try parse("GET / HTTP/1.1\r\nX: " + String(repeating: "a", count: 20_000))
        }
    }
}

@Suite struct AuthenticatorTests {
    @Test func parsesTokensFileAndMapsTenants() throws {
        let auth = try Authenticator(parsing: "# fleet tokens\nabc acme\n\n  def\tbeta # trailing\n")
        #expect(auth.tokenCount == 2)
        #expect(auth.tenant(for: "abc") == "acme" && auth.tenant(for: "def") == "beta")
        #expect(auth.tenant(for: "ab") == nil && auth.tenant(for: "abcd") == nil && auth.tenant(for: "") == nil)
    }

    @Test func badLinesAreNamed() {
        #expect(throws: Authenticator.ParseError.self) { try Authenticator(parsing: "ok t\nonlytoken\n") }
        do { _ = try Authenticator(parsing: "ok t\nonlytoken\n") } catch { #expect(error.line == 2) }
        do { _ = try Authenticator(parsing: "a t\na u\n") } catch { #expect(error.reason == "duplicate token") }
    }

    @Test func tokensAreBoundedAndFoundAmongMany() throws {
        var tokens: [String: String] = [:]
        for i in 0..<1000 { tokens["token-\(i)"] = "tenant-\(i % 7)" }
        let auth = Authenticator(tokens: tokens)
        #expect(auth.tokenCount == 1000)
        for i in stride(from: 0, to: 1000, by: 37) { #expect(auth.tenant(for: "token-\(i)") == "tenant-\(i % 7)") }
        #expect(auth.tenant(for: "token-1000") == nil)
        // A token past the bound is refused unread; a tokens file with one is an error.
        #expect(auth.tenant(for: String(repeating: "x", count: 4 << 20)) == nil)
        do { _ = try Authenticator(parsing: String(repeating: "k", count: 1025) + " acme\n"); Issue.record("accepted") } catch {
            #expect(error.reason.contains("longer than 1024"))
        }
    }

    @Test func insecureModeAcceptsEveryone() {
        #expect(Authenticator(tokens: [:], insecure: true).tenant(for: "anything") == "default")
    }

    @Test func constantTimeCompareIsExact() {
        #expect(Authenticator.constantTimeEqual(Array("abc".utf8), Array("abc".utf8)))
        #expect(!Authenticator.constantTimeEqual(Array("abc".utf8), Array("abd".utf8)))
        #expect(!Authenticator.constantTimeEqual(Array("abc".utf8), Array("abc\0".utf8)))
        #expect(!Authenticator.constantTimeEqual([], Array("a".utf8)))
    }
}

@Suite struct AdminRoutesTests {
    @Test func jsonStringsAreEscaped() {
        #expect(AdminRoutes.json("a\"b\\c\nd\u{1}é") == "\"a\\\"b\\\\c\\nd\\u0001é\"")
        #expect(AdminRoutes.number(.nan) == "null" && AdminRoutes.number(0.25) == "0.25")
    }
}
