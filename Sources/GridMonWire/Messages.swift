/// The GridMon wire messages as Swift values, one type per message of `Proto/gridmon.proto`.
///
/// These are plain `Sendable` value types with no behaviour: field meanings are documented
/// in the schema, which is the contract. `Message` is the `Frame.body` oneof.
/// Strings travel as protobuf-c C strings, so a NUL character ends a string on the wire.

/// One frame payload: exactly one of the protocol's messages.
public enum Message: Equatable, Sendable {
    case hello(Hello)
    case welcome(Welcome)
    case samples(SampleBatch)
    case ack(Ack)
    case ping(Ping)
    case pong(Pong)
    case goodbye(Goodbye)
    case error(ErrorMessage)
}

/// A key/value label of a node, written as a tag next to `host`.
public struct Label: Equatable, Hashable, Sendable {
    public var key: String
    public var value: String
    public init(key: String, value: String) {
        self.key = key
        self.value = value
    }
}

/// Agent → server: opens one node stream on the connection.
public struct Hello: Equatable, Sendable {
    public var protocolVersion: UInt32
    public var nodeID: String
    public var agentVersion: String
    public var labels: [Label]
    public var authToken: String
    public var streamID: UInt32
    /// Random id of the agent process; "" from agents that predate it.
    public var instanceID: String

    public init(
        protocolVersion: UInt32 = Preface.version, nodeID: String, agentVersion: String = "",
        labels: [Label] = [], authToken: String = "", streamID: UInt32, instanceID: String = ""
    ) {
        self.instanceID = instanceID
        self.protocolVersion = protocolVersion
        self.nodeID = nodeID
        self.agentVersion = agentVersion
        self.labels = labels
        self.authToken = authToken
        self.streamID = streamID
    }
}

/// Limits the server enforces on a connection, announced in `Welcome`.
public struct ServerLimits: Equatable, Sendable {
    public var maxFrameBytes: UInt32
    public var keepaliveIntervalMs: UInt32
    public var maxStreams: UInt32
    public init(maxFrameBytes: UInt32 = 0, keepaliveIntervalMs: UInt32 = 0, maxStreams: UInt32 = 0) {
        self.maxFrameBytes = maxFrameBytes
        self.keepaliveIntervalMs = keepaliveIntervalMs
        self.maxStreams = maxStreams
    }
}

/// Server → agent: the answer to a `Hello`, with the point the agent resumes from.
public struct Welcome: Equatable, Sendable {
    public var streamID: UInt32
    public var accepted: Bool
    public var serverID: String
    public var durableSeq: UInt64
    /// Absent on the wire when nil (protobuf message field presence).
    public var limits: ServerLimits?
    public var message: String

    public init(
        streamID: UInt32, accepted: Bool = true, serverID: String = "", durableSeq: UInt64 = 0,
        limits: ServerLimits? = nil, message: String = ""
    ) {
        self.streamID = streamID
        self.accepted = accepted
        self.serverID = serverID
        self.durableSeq = durableSeq
        self.limits = limits
        self.message = message
    }
}

/// A named gauge outside the fixed set of `Sample`.
public struct Gauge: Equatable, Sendable {
    public var name: String
    public var value: Double
    public init(name: String, value: Double) {
        self.name = name
        self.value = value
    }
}

/// One measurement of one node at one instant.
public struct Sample: Equatable, Sendable {
    public var seq: UInt64
    public var timestampNs: Int64
    public var cpuPercent: Double
    public var memoryPercent: Double
    public var diskPercent: Double
    public var load1: Double
    public var netRxBytesPerSec: Double
    public var netTxBytesPerSec: Double
    public var diskReadBytesPerSec: Double
    public var diskWriteBytesPerSec: Double
    public var extra: [Gauge]

    public init(
        seq: UInt64, timestampNs: Int64, cpuPercent: Double = 0, memoryPercent: Double = 0,
        diskPercent: Double = 0, load1: Double = 0, netRxBytesPerSec: Double = 0,
        netTxBytesPerSec: Double = 0, diskReadBytesPerSec: Double = 0,
        diskWriteBytesPerSec: Double = 0, extra: [Gauge] = []
    ) {
        self.seq = seq
        self.timestampNs = timestampNs
        self.cpuPercent = cpuPercent
        self.memoryPercent = memoryPercent
        self.diskPercent = diskPercent
        self.load1 = load1
        self.netRxBytesPerSec = netRxBytesPerSec
        self.netTxBytesPerSec = netTxBytesPerSec
        self.diskReadBytesPerSec = diskReadBytesPerSec
        self.diskWriteBytesPerSec = diskWriteBytesPerSec
        self.extra = extra
    }
}

/// Agent → server: samples of one stream, in increasing `seq` order.
public struct SampleBatch: Equatable, Sendable {
    public var streamID: UInt32
    public var samples: [Sample]
    public init(streamID: UInt32, samples: [Sample]) {
        self.streamID = streamID
        self.samples = samples
    }
}

/// The anomaly verdict for one flagged sample: its `seq` and score in 0...1.
public struct Verdict: Equatable, Sendable {
    public var seq: UInt64
    public var score: Double
    public init(seq: UInt64, score: Double) {
        self.seq = seq
        self.score = score
    }
}

/// Server → agent: every sample of `streamID` with seq ≤ `durableSeq` is durable.
public struct Ack: Equatable, Sendable {
    public var streamID: UInt32
    public var durableSeq: UInt64
    public var anomalies: [Verdict]
    /// How the acknowledged samples were judged (`LEARNING`: not yet; see the proto).
    public var detector: DetectorState
    public init(streamID: UInt32, durableSeq: UInt64, anomalies: [Verdict] = [], detector: DetectorState = .unspecified) {
        self.streamID = streamID
        self.durableSeq = durableSeq
        self.anomalies = anomalies
        self.detector = detector
    }
}

/// How a node's samples are judged (`Ack.detector`, issue #11). Unknown wire values read as
/// `.unspecified` (proto3 open enums).
public enum DetectorState: UInt32, Equatable, Sendable {
    case unspecified = 0, learning = 1, active = 2, off = 3

    public var name: String {
        switch self {
        case .unspecified: "unspecified"
        case .learning: "learning"
        case .active: "active"
        case .off: "off"
        }
    }
}

/// Either side: liveness probe, answered by a `Pong` with the same nonce.
public struct Ping: Equatable, Sendable {
    public var nonce: UInt64
    public init(nonce: UInt64) { self.nonce = nonce }
}

/// Either side: the answer to a `Ping`.
public struct Pong: Equatable, Sendable {
    public var nonce: UInt64
    public init(nonce: UInt64) { self.nonce = nonce }
}

/// Either side: a deliberate close (shutdown, restart); the peer should reconnect later.
public struct Goodbye: Equatable, Sendable {
    public var reason: String
    public init(reason: String) { self.reason = reason }
}

/// Either side: a failure with a gRPC status code. `streamID` 0 means the whole connection.
public struct ErrorMessage: Equatable, Sendable {
    public var code: StatusCode
    public var message: String
    public var streamID: UInt32
    public init(code: StatusCode, message: String, streamID: UInt32 = 0) {
        self.code = code
        self.message = message
        self.streamID = streamID
    }
}
