import ArgumentParser
import GridMonConfig
import GridMonDetect
import GridMonPosix
import GridMonServer
import GridMonTLS

/// The server's settings checked before it starts (issue #15, item 4): each error names the
/// flag, variable or file key its value came from, and the value.
extension StreamServer {
    /// A bad value: names where it came from (flag, variable or file key) and what it was.
    func bad(_ name: String, _ rule: String, _ value: Any, variable: String? = nil) -> ValidationError {
        ValidationError("\(Settings.shared.origin(name, variable: variable)): \(rule), got '\(value)'")
    }

    /// Every setting checked, each error naming its key and value; exit 64 through ArgumentParser.
    func check() throws {
        if let problem = Settings.shared.firstProblem() { throw ValidationError(problem) }
        guard tlsCert.isEmpty == tlsKey.isEmpty else { throw ValidationError("--tls-cert and --tls-key go together") }
        guard tlsClientCa.isEmpty || !tlsCert.isEmpty else { throw ValidationError("--tls-client-ca needs --tls-cert and --tls-key") }
        guard TLSVersion(rawValue: tlsMinVersion) != nil else { throw bad("tls-min-version", "expected 1.2 or 1.3", tlsMinVersion) }
        try checkAddress("listen", listen)
        if adminListen != "off" { try checkAddress("admin-listen", adminListen, orOff: true) }
        guard Log.Level(name: logLevel) != nil else { throw bad("log-level", "expected debug, info, warn or error", logLevel) }
        guard Log.Format(name: logFormat) != nil else { throw bad("log-format", "expected logfmt or json", logFormat) }
        guard !adminTls || !tlsCert.isEmpty else { throw ValidationError("--admin-tls needs --tls-cert and --tls-key") }
        guard !tlsTenantFromCertificate || !tlsClientCa.isEmpty else {
            throw ValidationError("--tls-tenant-from-certificate needs --tls-client-ca (the certificates it trusts)")
        }
        guard insecureNoAuth || !tokensFile.isEmpty || tlsTenantFromCertificate else {
            throw ValidationError("give --tokens-file FILE, --tls-tenant-from-certificate, or --insecure-no-auth to accept every agent (demos only)")
        }
        guard (0...256).contains(threads) else { throw bad("threads", "must be 0 ... 256", threads) }
        guard maxConnections > 0 else { throw bad("max-connections", "must be positive", maxConnections) }
        guard maxStreams > 0 else { throw bad("max-streams", "must be positive", maxStreams) }
        // 16 MiB: one frame's samples, as lines, must fit the outbox's record bound many times over.
        guard maxFrameBytes >= 64, maxFrameBytes <= 16 << 20 else { throw bad("max-frame-bytes", "must be 64 ... 16777216", maxFrameBytes) }
        guard maxNodes > 0 else { throw bad("max-nodes", "must be positive", maxNodes) }
        guard maxNodesPerTenant > 0 else { throw bad("max-nodes-per-tenant", "must be positive", maxNodesPerTenant) }
        guard nodeForgetAfterSeconds >= 0 else { throw bad("node-forget-after-seconds", "must not be negative", nodeForgetAfterSeconds) }
        guard maxUnauthenticatedPerIp > 0 else { throw bad("max-unauthenticated-per-ip", "must be positive", maxUnauthenticatedPerIp) }
        guard maxSeqJump > 0 else { throw bad("max-seq-jump", "must be positive", maxSeqJump) }
        guard (0...1).contains(threshold) else { throw bad("threshold", "must be within 0...1", threshold) }
        guard ["outbox", "none"].contains(store) else { throw bad("store", "expected outbox or none", store) }
        guard ["v1", "v2"].contains(influxAPI) else { throw bad("influx-api", "expected v1 or v2", influxAPI) }
        guard influxURL.isEmpty || influxURL.hasPrefix("http://") || influxURL.hasPrefix("https://") else {
            throw bad("influx-url", "must start with http:// or https://", influxURL)
        }
        guard influxURL.isEmpty || store == "outbox" else { throw ValidationError("--influx-url needs --store outbox (the queue it ships from)") }
        guard (1...600_000).contains(influxFlushMs) else { throw bad("influx-flush-ms", "must be 1 ... 600000", influxFlushMs) }
        guard (1...1_000_000).contains(influxBatchLines) else { throw bad("influx-batch-lines", "must be 1 ... 1000000", influxBatchLines) }
        guard ["backpressure", "drop-oldest"].contains(outboxFullPolicy) else { throw bad("outbox-full-policy", "expected backpressure or drop-oldest", outboxFullPolicy) }
        guard (1 << 20...1 << 30).contains(segmentBytes) else { throw bad("segment-bytes", "must be 1 MiB ... 1 GiB", segmentBytes) }
        guard (1...64).contains(influxConcurrency) else { throw bad("influx-concurrency", "must be 1 ... 64", influxConcurrency) }
        guard (100...600_000).contains(influxTimeoutMs) else { throw bad("influx-timeout-ms", "must be 100 ... 600000", influxTimeoutMs) }
        guard retentionBytes >= 1 << 20 else { throw bad("retention-bytes", "must be at least 1 MiB", retentionBytes) }
        // The segment being written can only go once full: a limit below two segments left a
        // delivered outbox over its limit with nothing deletable — ingestion stopped for good
        // (backpressure) or the limit was ignored (drop-oldest) (issue #18, items 1 and 2).
        guard retentionBytes >= 2 * segmentBytes else {
            throw ValidationError("--retention-bytes (\(retentionBytes)) must be at least twice --segment-bytes (\(segmentBytes)): "
                                  + "the segment being written is deleted only once full")
        }
        guard retentionHours >= 0 else { throw bad("retention-hours", "must not be negative", retentionHours) }
        guard (0...10_000).contains(commitDelayMs) else { throw bad("commit-delay-ms", "must be 0 ... 10000", commitDelayMs) }
        guard ["temporal", "forest", "static"].contains(scorer) else { throw bad("scorer", "expected temporal, forest or static", scorer) }
        guard nodeWarmup >= 0 else { throw bad("node-warmup", "must not be negative", nodeWarmup) }
        guard nodeRefit > 0 else { throw bad("node-refit", "must be positive", nodeRefit) }
        guard (16...1_000_000).contains(nodeReservoir) else { throw bad("node-reservoir", "must be 16 ... 1000000", nodeReservoir) }
        guard nodeModelsMax >= 0 else { throw bad("node-models-max", "must not be negative", nodeModelsMax) }
        guard nodeThreshold.isFinite, nodeThreshold > 0 else { throw bad("node-threshold", "must be a positive number", nodeThreshold) }
        guard (1...1000).contains(nodeTrees) else { throw bad("node-trees", "must be 1 ... 1000", nodeTrees) }
        guard (1...64).contains(nodeTopK) else { throw bad("node-top-k", "must be 1 ... 64", nodeTopK) }
        guard nodeRangeScale >= 0, nodeRangeScale.isFinite else { throw bad("node-range-scale", "must not be negative", nodeRangeScale) }
        // 256: a node's forests grow with its metrics (16 trees each); its history is capped at 4 MiB.
        guard (1...256).contains(nodeMaxMetrics) else { throw bad("node-max-metrics", "must be 1 ... 256", nodeMaxMetrics) }
        if let problem = incidentRules.problem { throw ValidationError(problem) }
        guard (1...1_000_000).contains(recentIncidents) else { throw bad("recent-incidents", "must be 1 ... 1000000", recentIncidents) }
        guard scorer != "temporal" || tenantModels.isEmpty else { throw ValidationError("--tenant-models needs --scorer forest") }
        do { _ = try notify.options(adminListen: adminListen) } catch { throw ValidationError("\(error)") }
    }

    /// `HOST:PORT`, `[IPV6]:PORT` or `:PORT` (every address); the host is resolved now, so a
    /// name that does not resolve is said at once.
    func checkAddress(_ name: String, _ text: String, orOff: Bool = false) throws {
        let shape = orOff ? "expected HOST:PORT, [IPV6]:PORT or 'off'" : "expected HOST:PORT or [IPV6]:PORT"
        if case .failure(let problem) = SocketAddress.parse(text) { throw bad(name, "\(shape): \(problem)", text) }
    }
}
