import Histogram

/// What a flood run measured; aggregated on the client's reactor thread.
public struct FloodStats: Sendable {
    public var samplesSent: UInt64 = 0
    public var samplesAcked: UInt64 = 0
    /// Samples sent again after a reconnect (lost in flight when a connection broke).
    public var samplesResent: UInt64 = 0
    public var framesSent: UInt64 = 0
    public var bytesSent: UInt64 = 0
    public var anomaliesReported: UInt64 = 0
    public var reconnects: UInt64 = 0
    public var connectionsUp = 0
    /// Errors by kind: `connect`, `closed_by_server`, server status names, decode error kinds.
    public var errors: [String: UInt64] = [:]
    /// Ack latency per sample in microseconds: send of its frame → ack covering it.
    public var latencyMicros = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
    /// The same for frames sent after `FloodConfig.latencyAfterNs` (the steady state).
    public var laterLatencyMicros = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)

    /// TLS handshakes completed and their summed wall time (ns, from the TCP connect to the
    /// handshake's end, as the client saw it).
    public var tlsHandshakes: UInt64 = 0
    public var tlsHandshakeNs: UInt64 = 0

    /// Fleet mode: the verdicts scored against the simulator's labels.
    public var detection: DetectionTally?

    public init() {}

    public mutating func error(_ kind: String) { errors[kind, default: 0] += 1 }

    mutating func tlsHandshake(_ ns: UInt64) {
        tlsHandshakes += 1
        tlsHandshakeNs += ns
    }
}
