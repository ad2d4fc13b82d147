import GridMonPosix
import GridMonTLS
import GridMonWire

/// What one flood run does. Every run is bounded: by `totalSamples`, by `durationNs`, or both.
public struct FloodConfig: Sendable {
    public var target = SocketAddress(host: "127.0.0.1", port: 7070)
    public var connections = 1
    public var streamsPerConnection = 1
    /// Samples per `SampleBatch` frame.
    public var batchSize = 64
    /// Named gauges added to every sample besides the fixed eight, shaped like the agent's
    /// (`AgentGauges`; 0 ... `AgentGauges.maxCount`).
    public var extraGauges = 0
    /// Stop after this many samples were sent (nil = no count limit).
    public var totalSamples: UInt64? = 1_000_000
    /// Stop sending after this long (nil = no time limit).
    public var durationNs: UInt64? = nil
    /// Samples per second per stream; nil = as fast as acks allow (flood).
    public var ratePerStream: Double? = nil
    /// When not 0, ack latency is also reported for the frames sent this long after the start
    /// alone, so a run's steady state can be read apart from the ramp-up of thousands of
    /// connections.
    public var latencyAfterNs: UInt64 = 0
    /// Unacknowledged samples allowed per stream before it waits for an ack.
    public var windowSamples = 8192
    public var authToken = ""
    /// Prefix of the simulated node ids: `<prefix>-<connection>-<stream>`.
    public var nodePrefix = "flood"
    /// How long to wait for outstanding acks after sending stopped.
    public var drainNs: UInt64 = 5_000_000_000
    /// New connections opened per 10 ms while ramping up (avoids SYN-queue overflow).
    public var connectsPerTick = 500
    public var seed: UInt64 = 1
    /// TLS to the server (nil: plain TCP), and the name its certificate must carry.
    public var tls: TLSContext?
    public var tlsServerName: String?

    public init() {}
}
