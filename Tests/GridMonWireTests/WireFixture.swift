@testable import GridMonWire

/// Messages covering every body type and the values codecs get wrong: non-ASCII and
/// separator characters in strings, uint64 max, negative int64, tiny and large doubles,
/// absent vs present sub-messages, an unknown status code.
///
/// Interop/interop.py builds the same list, field by field, with Google's protobuf for Python:
/// keep the two in the same order and with the same values.
enum WireFixture {
    static let messages: [Message] = [
        .hello(Hello(
            protocolVersion: 1, nodeID: "node-α-01", agentVersion: "gridmon-agent/0.1.0",
            labels: [Label(key: "rack", value: "b12"), Label(key: "env", value: "prod, eu=1 \"x\"")],
            authToken: "t0k3n", streamID: 7)),
        .welcome(Welcome(
            streamID: 7, accepted: true, serverID: "srv-1", durableSeq: UInt64.max,
            limits: ServerLimits(maxFrameBytes: 4_194_304, keepaliveIntervalMs: 15_000, maxStreams: 1024),
            message: "welcome")),
        .welcome(Welcome(streamID: 8, accepted: false, serverID: "", durableSeq: 0, limits: nil, message: "no")),
        .samples(SampleBatch(streamID: 7, samples: [
            Sample(
                seq: 1, timestampNs: 1_700_000_000_123_456_789, cpuPercent: 12.5, memoryPercent: 41.25,
                diskPercent: 63.0, load1: 0.75, netRxBytesPerSec: 123_456.0, netTxBytesPerSec: 65_432.5,
                diskReadBytesPerSec: 4096.0, diskWriteBytesPerSec: 8192.0,
                extra: [Gauge(name: "temp_c", value: 41.5), Gauge(name: "fan rpm", value: 1200.0)]),
            Sample(seq: 2, timestampNs: -1, cpuPercent: 100.0, memoryPercent: 0, diskPercent: 1e-300,
                   load1: 1e300),
            Sample(seq: UInt64.max, timestampNs: Int64.min, cpuPercent: -3.5),
        ])),
        .samples(SampleBatch(streamID: 9, samples: [])),
        .ack(Ack(streamID: 7, durableSeq: 3, anomalies: [Verdict(seq: 2, score: 0.734), Verdict(seq: 3, score: 0.9)])),
        .ping(Ping(nonce: 42)),
        .pong(Pong(nonce: UInt64.max)),
        .goodbye(Goodbye(reason: "server shutting down")),
        .error(ErrorMessage(code: .unauthenticated, message: "bad token for node \"x\"", streamID: 7)),
        .error(ErrorMessage(code: .other(99), message: "", streamID: 0)),
    ]
}
