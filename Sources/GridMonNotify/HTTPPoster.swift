import CCurl

/// One keep-alive HTTP connection for posting JSON (a libcurl easy handle), blocking.
///
/// Threading: one thread at a time (the receiver's own). `curl_global_init` must have run
/// (the server does it once at start). Errors: a request that got no HTTP answer returns
/// status 0 with curl's message.
final class HTTPPoster {
    private let handle: UnsafeMutableRawPointer
    private let timeoutMs: Int
    private let answer = Answer()

    final class Answer {
        var body: [UInt8] = []
    }

    init(timeoutMs: Int = 5_000) {
        handle = curl_easy_init()
        self.timeoutMs = timeoutMs
        _ = gridmon_curl_set_long(handle, CURLOPT_NOSIGNAL, 1)
        _ = gridmon_curl_set_long(handle, CURLOPT_CONNECTTIMEOUT_MS, min(timeoutMs, 2_000))
        _ = gridmon_curl_set_long(handle, CURLOPT_TIMEOUT_MS, timeoutMs)
        _ = gridmon_curl_set_long(handle, CURLOPT_TCP_KEEPALIVE, 1)
        _ = gridmon_curl_set_long(handle, CURLOPT_POST, 1)
        let box = Unmanaged.passUnretained(answer).toOpaque()
        _ = gridmon_curl_set_pointer(handle, CURLOPT_WRITEDATA, box)
        _ = gridmon_curl_set_write_function(handle, { data, size, count, user in
            let answer = Unmanaged<Answer>.fromOpaque(user!).takeUnretainedValue()
            let bytes = UnsafeRawBufferPointer(start: data, count: size * count)
            if answer.body.count < 1024 { answer.body += bytes.prefix(1024 - answer.body.count) }
            return size * count
        })
    }

    deinit { curl_easy_cleanup(handle) }

    /// POSTs `body` to `url` with `headers` (`Name: value`); the status (0: no answer) and the
    /// first KiB of the answer, or curl's error.
    func post(_ url: String, body: [UInt8], headers: [String]) -> (status: Int, text: String) {
        var list: UnsafeMutablePointer<curl_slist>?
        for header in ["Content-Type: application/json", "Expect:"] + headers { list = curl_slist_append(list, header) }
        defer { curl_slist_free_all(list) }
        answer.body.removeAll(keepingCapacity: true)
        _ = gridmon_curl_set_slist(handle, CURLOPT_HTTPHEADER, list)
        _ = gridmon_curl_set_string(handle, CURLOPT_URL, url)
        _ = gridmon_curl_set_size(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(body.count))
        let code = body.withUnsafeBytes { raw in
            _ = gridmon_curl_set_pointer(handle, CURLOPT_POSTFIELDS, UnsafeMutableRawPointer(mutating: raw.baseAddress))
            return curl_easy_perform(handle)
        }
        _ = gridmon_curl_set_pointer(handle, CURLOPT_POSTFIELDS, nil)
        guard code == CURLE_OK else { return (0, String(cString: curl_easy_strerror(code))) }
        return (gridmon_curl_response_code(handle), String(decoding: answer.body, as: UTF8.self))
    }
}
