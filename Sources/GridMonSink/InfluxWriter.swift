import CCurl
import GridMonPosix

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
    public var totalTimeoutMs = 10_000

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
}

/// Posts line protocol to InfluxDB with libcurl, one keep-alive connection per writer.
///
/// Threading: one writer per thread (a curl easy handle is not shared). Ownership: owns the
/// handle; `curl_global_init` must have run once before threads (`InfluxWriter.globalInit`).
public final class InfluxWriter {
    public let target: InfluxTarget
    private let curl: UnsafeMutableRawPointer
    private var headers: UnsafeMutablePointer<curl_slist>?

    /// Call once, before any thread uses curl (curl_global_init is not thread-safe).
    public static func globalInit() { curl_global_init(Int(CURL_GLOBAL_DEFAULT)) }

    public init(target: InfluxTarget) {
        self.target = target
        curl = curl_easy_init()
        headers = curl_slist_append(nil, "Content-Type: text/plain; charset=utf-8")
        headers = curl_slist_append(headers, "Expect:")  // no 100-continue round trip on large bodies
        if case .v2(_, _, let token) = target.api { headers = curl_slist_append(headers, "Authorization: Token \(token)") }
        _ = gridmon_curl_set_long(curl, CURLOPT_NOSIGNAL, 1)
        _ = gridmon_curl_set_long(curl, CURLOPT_CONNECTTIMEOUT_MS, target.connectTimeoutMs)
        _ = gridmon_curl_set_long(curl, CURLOPT_TIMEOUT_MS, target.totalTimeoutMs)
        _ = gridmon_curl_set_long(curl, CURLOPT_TCP_KEEPALIVE, 1)
        _ = gridmon_curl_set_slist(curl, CURLOPT_HTTPHEADER, headers)
        _ = gridmon_curl_set_write_function(curl, { data, size, count, user in
            let box = Unmanaged<Response>.fromOpaque(user!).takeUnretainedValue()
            let bytes = UnsafeRawBufferPointer(start: data, count: size * count)
            if box.body.count < 4096 { box.body += bytes.prefix(4096 - box.body.count) }
            return size * count
        })
        _ = gridmon_curl_set_header_function(curl, { data, size, count, user in
            let box = Unmanaged<Response>.fromOpaque(user!).takeUnretainedValue()
            let line = String(decoding: UnsafeRawBufferPointer(start: data, count: size * count), as: UTF8.self)
            if line.lowercased().hasPrefix("retry-after:") {
                box.retryAfter = Double(String(line.dropFirst("retry-after:".count)).trimmingCharacters())
            }
            return size * count
        })
    }

    deinit {
        curl_slist_free_all(headers)
        curl_easy_cleanup(curl)
    }

    final class Response {
        var body: [UInt8] = []
        var retryAfter: Double?
    }

    /// Writes `lines` (line protocol, newline-terminated) for `tenant`.
    public func write(_ lines: [UInt8], tenant: String) -> WriteOutcome {
        let container = target.container(for: tenant)
        let url: String
        switch target.api {
        case .v1(_, let rp, let user, let password):
            var query = "db=\(percentEncode(container))&precision=ns"
            if !rp.isEmpty { query += "&rp=\(percentEncode(rp))" }
            if !user.isEmpty { query += "&u=\(percentEncode(user))&p=\(percentEncode(password))" }
            url = "\(target.baseURL)/write?\(query)"
        case .v2(let org, _, _):
            url = "\(target.baseURL)/api/v2/write?org=\(percentEncode(org))&bucket=\(percentEncode(container))&precision=ns"
        }
        return post(url: url, body: lines)
    }

    /// Creates the database (v1: `CREATE DATABASE`) of `tenant`. True when it exists afterwards.
    public func createContainer(tenant: String) -> Bool {
        guard case .v1(_, _, let user, let password) = target.api else { return false }
        var query = "q=" + percentEncode("CREATE DATABASE \"\(target.container(for: tenant))\"")
        if !user.isEmpty { query += "&u=\(percentEncode(user))&p=\(percentEncode(password))" }
        // InfluxDB reads `q` from the URL of a POST too; the body stays empty.
        return post(url: "\(target.baseURL)/query?\(query)", body: []) == .written
    }

    private func post(url: String, body: [UInt8]) -> WriteOutcome {
        let response = Response()
        let box = Unmanaged.passRetained(response)
        defer { box.release() }
        _ = gridmon_curl_set_pointer(curl, CURLOPT_WRITEDATA, box.toOpaque())
        _ = gridmon_curl_set_pointer(curl, CURLOPT_HEADERDATA, box.toOpaque())
        _ = gridmon_curl_set_string(curl, CURLOPT_URL, url)
        _ = gridmon_curl_set_long(curl, CURLOPT_POST, 1)
        let code: CURLcode = body.withUnsafeBytes { raw in
            _ = gridmon_curl_set_size(curl, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(raw.count))
            _ = gridmon_curl_set_pointer(curl, CURLOPT_POSTFIELDS, UnsafeMutableRawPointer(mutating: raw.baseAddress))
            return curl_easy_perform(curl)
        }
        _ = gridmon_curl_set_pointer(curl, CURLOPT_POSTFIELDS, nil)
        guard code == CURLE_OK else { return .failed(String(cString: curl_easy_strerror(code))) }
        let status = gridmon_curl_response_code(curl)
        let message = String(decoding: response.body, as: UTF8.self)
        switch status {
        case 200, 204: return .written
        case 400, 422: return .rejected(status: status, message: message)
        case 413: return .tooLarge
        case 429, 503: return .busy(status: status, retryAfter: response.retryAfter)
        case 401, 403: return .unauthorized(status: status, message: message)
        case 404: return .notFound(message: message)
        default: return .failed("HTTP \(status): \(message)")
        }
    }

    private func percentEncode(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
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
}

extension String {
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
