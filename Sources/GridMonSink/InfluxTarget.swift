/// Where points go: an InfluxDB 1.x database (`/write?db=`) or a v2 bucket (`/api/v2/write`).
public struct InfluxTarget: Sendable {
    public enum API: Sendable {
        /// `database` may contain `{tenant}`, replaced by the sample's tenant.
        case v1(database: String, retentionPolicy: String, username: String, password: String)
        /// `bucket` may contain `{tenant}`.
        case v2(org: String, bucket: String, token: String)
    }

    public var baseURL: String
    public var api: API
    public var connectTimeoutMs = 2_000
    /// The whole request, answer included; a write slower than this is retried.
    public var totalTimeoutMs = 10_000
    /// Send bodies gzip-compressed (`Content-Encoding: gzip`).
    public var gzip = false
    /// A liveness probe (`GET /ping`) not answered within this is "not answering".
    public var probeTimeoutMs = 2_000

    public init(baseURL: String, api: API) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.api = api
    }

    /// The database (v1) or bucket (v2) of `tenant`.
    public func container(for tenant: String) -> String {
        switch api {
        case .v1(let database, _, _, _): database.replacingAll("{tenant}", with: tenant)
        case .v2(_, let bucket, _): bucket.replacingAll("{tenant}", with: tenant)
        }
    }

    /// The write URL of `tenant`, nanosecond precision.
    public func writeURL(tenant: String) -> String {
        let container = container(for: tenant)
        switch api {
        case .v1(_, let rp, let user, let password):
            var query = "db=\(container.percentEncoded)&precision=ns"
            if !rp.isEmpty { query += "&rp=\(rp.percentEncoded)" }
            if !user.isEmpty { query += "&u=\(user.percentEncoded)&p=\(password.percentEncoded)" }
            return "\(baseURL)/write?\(query)"
        case .v2(let org, _, _):
            return "\(baseURL)/api/v2/write?org=\(org.percentEncoded)&bucket=\(container.percentEncoded)&precision=ns"
        }
    }

    /// The base URL without any `user:password@` (what `/readyz`, open to probes, and the
    /// logs show).
    public var displayURL: String {
        let parts = baseURL.split(separator: "/", maxSplits: 3, omittingEmptySubsequences: false)  // scheme:, "", authority, path
        guard parts.count >= 3, parts[1].isEmpty, let at = parts[2].lastIndex(of: "@") else { return baseURL }
        var shown = parts
        shown[2] = parts[2][parts[2].index(after: at)...]
        return shown.joined(separator: "/")
    }

    /// The liveness probe's URL: `/ping` (InfluxDB 1.x and 2.x answer 204). Any HTTP answer
    /// counts as answering, so servers without `/ping` (a proxy, another engine) probe fine.
    public var pingURL: String { baseURL + "/ping" }

    /// The v1 URL that creates `tenant`'s database (`CREATE DATABASE`; InfluxDB reads `q`
    /// from the URL of a POST too). Nil for v2: buckets are made by their owners.
    public func createURL(tenant: String) -> String? {
        guard case .v1(_, _, let user, let password) = api else { return nil }
        var query = "q=" + "CREATE DATABASE \"\(container(for: tenant))\"".percentEncoded
        if !user.isEmpty { query += "&u=\(user.percentEncoded)&p=\(password.percentEncoded)" }
        return "\(baseURL)/query?\(query)"
    }
}

/// What InfluxDB said about one write, as the best clients classify it.
public enum WriteOutcome: Equatable, Sendable {
    /// 204: everything written.
    case written
    /// 400/422: bad points (parse error, field type conflict, partial write); do not retry.
    case rejected(status: Int, message: String)
    /// 413: the body is too large; split it.
    case tooLarge
    /// 429/503: overloaded; wait `retryAfter` seconds when given.
    case busy(status: Int, retryAfter: Double?)
    /// 401/403: credentials refused; keep the data, retry, say so loudly.
    case unauthorized(status: Int, message: String)
    /// 404: no such database or bucket.
    case notFound(message: String)
    /// Other 5xx, or no HTTP answer at all (connection refused, timeout).
    case failed(String)

    /// The outcome of an HTTP answer with `status` and (the start of) its `body`.
    public init(status: Int, body: String, retryAfter: Double?) {
        switch status {
        case 200, 204: self = .written
        case 400, 422: self = .rejected(status: status, message: body)
        case 413: self = .tooLarge
        case 429, 503: self = .busy(status: status, retryAfter: retryAfter)
        case 401, 403: self = .unauthorized(status: status, message: body)
        case 404: self = .notFound(message: body)
        default: self = .failed("HTTP \(status): \(body)")
        }
    }
}

extension String {
    /// RFC 3986 percent-encoding of everything but the unreserved characters.
    var percentEncoded: String {
        var out = ""
        for byte in utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let hex = String(byte, radix: 16, uppercase: true)
                out += "%" + (hex.count == 1 ? "0" : "") + hex
            }
        }
        return out
    }

    func replacingAll(_ target: String, with replacement: String) -> String {
        guard !target.isEmpty else { return self }
        let pieces = Array(utf8)
        let needle = Array(target.utf8)
        var out: [UInt8] = []
        var i = 0
        while i < pieces.count {
            if i + needle.count <= pieces.count && Array(pieces[i..<i + needle.count]) == needle {
                out += replacement.utf8
                i += needle.count
            } else {
                out.append(pieces[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    func trimmingCharacters() -> String {
        var s = Substring(self)
        while let c = s.first, c == " " || c == "\t" || c == "\r" || c == "\n" { s.removeFirst() }
        while let c = s.last, c == " " || c == "\t" || c == "\r" || c == "\n" { s.removeLast() }
        return String(s)
    }
}
