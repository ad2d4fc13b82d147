import CCurl
import GridMonPosix

/// One keep-alive HTTP connection to InfluxDB (a libcurl easy handle) and the request on it.
///
/// A request is either run to completion (`write`, blocking) or started with `begin` and
/// driven by a `CurlMulti` alongside other writers' requests, which then hands the answer to
/// `finish`. The body is owned by the writer while its request runs.
///
/// Threading: one thread at a time (a curl easy handle is not shared). `globalInit` must have
/// run once before any thread uses curl.
public final class InfluxWriter {
    public let target: InfluxTarget
    let handle: UnsafeMutableRawPointer
    private var headers: UnsafeMutablePointer<curl_slist>?
    /// `headers` plus `Content-Encoding: gzip`.
    private var gzipHeaders: UnsafeMutablePointer<curl_slist>?
    private let response = Response()
    /// The body of the request in progress (curl reads it in place; kept alive until `finish`).
    private var body: [UInt8] = []
    private var startedNs: UInt64 = 0
    /// How long the last finished request took, in seconds (for the write latency histogram).
    public private(set) var lastDuration: Double = 0

    /// Call once, before any thread uses curl (curl_global_init is not thread-safe).
    public static func globalInit() { curl_global_init(Int(CURL_GLOBAL_DEFAULT)) }

    public init(target: InfluxTarget) {
        self.target = target
        handle = curl_easy_init()
        var common = ["Content-Type: text/plain; charset=utf-8", "Expect:"]  // Expect: no 100-continue round trip
        if case .v2(_, _, let token) = target.api { common.append("Authorization: Token \(token)") }
        for header in common { headers = curl_slist_append(headers, header) }
        for header in common + ["Content-Encoding: gzip"] { gzipHeaders = curl_slist_append(gzipHeaders, header) }
        _ = gridmon_curl_set_long(handle, CURLOPT_NOSIGNAL, 1)
        _ = gridmon_curl_set_long(handle, CURLOPT_CONNECTTIMEOUT_MS, target.connectTimeoutMs)
        _ = gridmon_curl_set_long(handle, CURLOPT_TIMEOUT_MS, target.totalTimeoutMs)
        _ = gridmon_curl_set_long(handle, CURLOPT_TCP_KEEPALIVE, 1)
        _ = gridmon_curl_set_long(handle, CURLOPT_POST, 1)
        // Hand the socket up to 2 MiB (curl's maximum) per call instead of 64 KiB: a driven
        // (multi) transfer then sends a 5,000-line batch in one or two steps.
        _ = gridmon_curl_set_long(handle, CURLOPT_UPLOAD_BUFFERSIZE, 2 << 20)
        // The response outlives every request: the writer owns both.
        let box = Unmanaged.passUnretained(response).toOpaque()
        _ = gridmon_curl_set_pointer(handle, CURLOPT_WRITEDATA, box)
        _ = gridmon_curl_set_pointer(handle, CURLOPT_HEADERDATA, box)
        _ = gridmon_curl_set_write_function(handle, { data, size, count, user in
            let response = Unmanaged<Response>.fromOpaque(user!).takeUnretainedValue()
            let bytes = UnsafeRawBufferPointer(start: data, count: size * count)
            if response.body.count < 4096 { response.body += bytes.prefix(4096 - response.body.count) }
            return size * count
        })
        _ = gridmon_curl_set_header_function(handle, { data, size, count, user in
            let response = Unmanaged<Response>.fromOpaque(user!).takeUnretainedValue()
            let line = String(decoding: UnsafeRawBufferPointer(start: data, count: size * count), as: UTF8.self)
            if line.lowercased().hasPrefix("retry-after:") {
                response.retryAfter = Double(String(line.dropFirst("retry-after:".count)).trimmingCharacters())
            }
            return size * count
        })
    }

    deinit {
        curl_easy_cleanup(handle)
        curl_slist_free_all(headers)
        curl_slist_free_all(gzipHeaders)
    }

    final class Response {
        var body: [UInt8] = []
        var retryAfter: Double?
    }

    /// Writes `lines` (line protocol, newline-terminated) for `tenant` and waits for the answer.
    public func write(_ lines: [UInt8], tenant: String) -> WriteOutcome {
        begin(lines, tenant: tenant)
        return finish(curl_easy_perform(handle))
    }

    /// Creates `tenant`'s database (v1 `CREATE DATABASE`). True when it exists afterwards.
    public func createContainer(tenant: String) -> Bool {
        guard let url = target.createURL(tenant: tenant) else { return false }
        _ = gridmon_curl_set_slist(handle, CURLOPT_HTTPHEADER, headers)
        prepare(url: url, body: [])
        return finish(curl_easy_perform(handle)) == .written
    }

    /// Sets up the write of `lines` for `tenant` (gzip-compressed when the target says so);
    /// run it with `curl_easy_perform` or a `CurlMulti`, then call `finish`.
    func begin(_ lines: [UInt8], tenant: String) {
        var compressed: [UInt8]?
        if target.gzip {
            do { compressed = try Gzip.compress(lines) } catch {
                Log.warning("gzip_failed", ["error": error])  // zlib fails only without memory; plain text still works
            }
        }
        _ = gridmon_curl_set_slist(handle, CURLOPT_HTTPHEADER, compressed == nil ? headers : gzipHeaders)
        prepare(url: target.writeURL(tenant: tenant), body: compressed ?? lines)
    }

    /// Sets up a liveness probe, `GET /ping` within `target.probeTimeoutMs`; run it like a
    /// write. Any HTTP answer (`finish` gives anything but `.failed`) means the target answers.
    func beginProbe() {
        body = []
        response.body.removeAll(keepingCapacity: true)
        response.retryAfter = nil
        _ = gridmon_curl_set_slist(handle, CURLOPT_HTTPHEADER, headers)
        _ = gridmon_curl_set_long(handle, CURLOPT_HTTPGET, 1)  // again each time: `finish` clearing POSTFIELDS makes it a POST
        _ = gridmon_curl_set_long(handle, CURLOPT_TIMEOUT_MS, target.probeTimeoutMs)
        _ = gridmon_curl_set_string(handle, CURLOPT_URL, target.pingURL)
        startedNs = Clock.monotonicNanos()
    }

    private func prepare(url: String, body: [UInt8]) {
        self.body = body
        response.body.removeAll(keepingCapacity: true)
        response.retryAfter = nil
        _ = gridmon_curl_set_string(handle, CURLOPT_URL, url)
        _ = gridmon_curl_set_size(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(self.body.count))
        // The array's storage stays put until `finish` (nothing mutates `body` meanwhile).
        _ = self.body.withUnsafeBytes { gridmon_curl_set_pointer(handle, CURLOPT_POSTFIELDS, UnsafeMutableRawPointer(mutating: $0.baseAddress)) }
        startedNs = Clock.monotonicNanos()
    }

    /// The outcome of the request `begin` set up, given curl's result code.
    func finish(_ code: CURLcode) -> WriteOutcome {
        lastDuration = Double(Clock.monotonicNanos() - startedNs) / 1e9
        _ = gridmon_curl_set_pointer(handle, CURLOPT_POSTFIELDS, nil)
        body = []
        guard code == CURLE_OK else { return .failed(String(cString: curl_easy_strerror(code))) }
        return WriteOutcome(status: gridmon_curl_response_code(handle), body: String(decoding: response.body, as: UTF8.self),
                            retryAfter: response.retryAfter)
    }
}
