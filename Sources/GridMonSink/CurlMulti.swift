import CCurl

/// Runs several writers' requests at once on one thread (libcurl's multi interface), so a
/// slow or unreachable database holds up only the writers aimed at it, and the caller can do
/// other work while InfluxDB answers.
///
/// Threading: the thread that owns it, and the writers added to it. Ownership: holds each
/// writer while its request runs.
public final class CurlMulti {
    private let multi: UnsafeMutableRawPointer
    private var running: [UnsafeMutableRawPointer: InfluxWriter] = [:]

    public init() { multi = curl_multi_init() }

    deinit {
        cancelAll()
        curl_multi_cleanup(multi)
    }

    /// Requests started and not yet answered.
    public var inFlight: Int { running.count }

    /// Starts writing `lines` for `tenant` on `writer` (which must be idle); it goes out at the
    /// next `send` or `poll`, its answer comes from `poll`.
    public func start(_ writer: InfluxWriter, lines: [UInt8], tenant: String) {
        writer.begin(lines, tenant: tenant)
        running[writer.handle] = writer
        curl_multi_add_handle(multi, writer.handle)
    }

    /// Sends what the sockets take now of the requests just started, so they do not wait for
    /// the caller's next `poll` (InfluxDB would idle meanwhile). Answers that arrive are
    /// collected by `poll`. Called once after starting several: each call walks every transfer.
    public func send() {
        var active: Int32 = 0
        curl_multi_perform(multi, &active)
    }

    /// Starts a liveness probe on `writer` (which must be idle; see `InfluxWriter.beginProbe`).
    public func startProbe(_ writer: InfluxWriter) {
        writer.beginProbe()
        running[writer.handle] = writer
        curl_multi_add_handle(multi, writer.handle)
    }

    /// Moves the transfers on, waiting up to `timeoutMs` for network activity when nothing
    /// finished yet, and returns the requests that finished, with their outcomes.
    public func poll(timeoutMs: Int32) -> [(InfluxWriter, WriteOutcome)] {
        var active: Int32 = 0
        curl_multi_perform(multi, &active)
        var done = collect()
        if done.isEmpty && !running.isEmpty && timeoutMs > 0 {
            curl_multi_poll(multi, nil, 0, timeoutMs, nil)
            curl_multi_perform(multi, &active)
            done = collect()
        }
        return done
    }

    /// Abandons every request in flight (their data stays wherever the caller keeps it).
    public func cancelAll() {
        for (handle, writer) in running {
            curl_multi_remove_handle(multi, handle)
            _ = writer.finish(CURLE_ABORTED_BY_CALLBACK)
        }
        running.removeAll()
    }

    private func collect() -> [(InfluxWriter, WriteOutcome)] {
        var done: [(InfluxWriter, WriteOutcome)] = []
        var left: Int32 = 0
        while let message = curl_multi_info_read(multi, &left) {
            guard message.pointee.msg == CURLMSG_DONE, let handle = message.pointee.easy_handle,
                  let writer = running.removeValue(forKey: handle) else { continue }
            let code = message.pointee.data.result
            curl_multi_remove_handle(multi, handle)
            done.append((writer, writer.finish(code)))
        }
        return done
    }
}
