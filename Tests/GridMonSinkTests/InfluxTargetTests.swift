import Testing
@testable import GridMonSink

@Suite struct InfluxTargetTests {
    @Test func v1URLsCarryTheTenantsDatabaseRetentionPolicyAndEncodedCredentials() {
        let target = InfluxTarget(baseURL: "http://127.0.0.1:8086/",
                                  api: .v1(database: "gridmon_{tenant}", retentionPolicy: "one week", username: "u", password: "p&w=d"))
        #expect(target.writeURL(tenant: "acme") == "http://127.0.0.1:8086/write?db=gridmon_acme&precision=ns&rp=one%20week&u=u&p=p%26w%3Dd")
        #expect(target.createURL(tenant: "a b") == "http://127.0.0.1:8086/query?q=CREATE%20DATABASE%20%22gridmon_a%20b%22&u=u&p=p%26w%3Dd")
    }

    @Test func theDisplayedURLLeavesCredentialsOut() {
        let api = InfluxTarget.API.v1(database: "d", retentionPolicy: "", username: "", password: "")
        #expect(InfluxTarget(baseURL: "https://ops:s3cret@influx.example:8086/prefix", api: api).displayURL == "https://influx.example:8086/prefix")
        #expect(InfluxTarget(baseURL: "http://127.0.0.1:8086", api: api).displayURL == "http://127.0.0.1:8086")
        #expect(InfluxTarget(baseURL: "http://host/path@x", api: api).displayURL == "http://host/path@x")
    }

    @Test func v2URLsNameOrgAndBucketAndCannotCreateBuckets() {
        let target = InfluxTarget(baseURL: "https://influx.example:8086", api: .v2(org: "my org", bucket: "b_{tenant}", token: "t"))
        #expect(target.writeURL(tenant: "ü") == "https://influx.example:8086/api/v2/write?org=my%20org&bucket=b_%C3%BC&precision=ns")
        #expect(target.createURL(tenant: "x") == nil)
    }

    @Test func answersAreClassifiedAsTheBestClientsDo() {
        #expect(WriteOutcome(status: 204, body: "", retryAfter: nil) == .written)
        #expect(WriteOutcome(status: 400, body: "partial write", retryAfter: nil) == .rejected(status: 400, message: "partial write"))
        #expect(WriteOutcome(status: 422, body: "x", retryAfter: nil) == .rejected(status: 422, message: "x"))
        #expect(WriteOutcome(status: 413, body: "", retryAfter: nil) == .tooLarge)
        #expect(WriteOutcome(status: 429, body: "", retryAfter: 3) == .busy(status: 429, retryAfter: 3))
        #expect(WriteOutcome(status: 503, body: "", retryAfter: nil) == .busy(status: 503, retryAfter: nil))
        #expect(WriteOutcome(status: 401, body: "no", retryAfter: nil) == .unauthorized(status: 401, message: "no"))
        #expect(WriteOutcome(status: 403, body: "no", retryAfter: nil) == .unauthorized(status: 403, message: "no"))
        #expect(WriteOutcome(status: 404, body: "database not found", retryAfter: nil) == .notFound(message: "database not found"))
        #expect(WriteOutcome(status: 500, body: "boom", retryAfter: nil) == .failed("HTTP 500: boom"))
    }
}

@Suite struct GzipTests {
    @Test func compressedLineProtocolRoundTripsAndIsMuchSmaller() throws {
        let lines = Array((0..<2000).map { "system_metrics,host=web-\($0 % 50),tenant=default cpu=\(Double($0) / 7),memory=40 \(1_700_000_000_000_000_000 + $0)\n" }.joined().utf8)
        let compressed = try Gzip.compress(lines)
        #expect(compressed.prefix(2) == [0x1f, 0x8b])  // the gzip magic (RFC 1952 §2.3.1)
        #expect(compressed.count * 4 < lines.count)
        #expect(try Gzip.decompress(compressed) == lines)
        #expect(try Gzip.decompress(try Gzip.compress([])) == [])
    }

    @Test func truncatedOrOversizedInputIsAnErrorNotACrash() throws {
        let compressed = try Gzip.compress(Array(repeating: UInt8(ascii: "a"), count: 100_000))
        #expect(throws: Gzip.Failure.self) { try Gzip.decompress(Array(compressed.prefix(compressed.count / 2))) }
        #expect(throws: Gzip.Failure.self) { try Gzip.decompress(compressed, limit: 1000) }
        #expect(throws: Gzip.Failure.self) { try Gzip.decompress([1, 2, 3, 4]) }
    }
}
