import CGridMonProto

/// Decodes frame payloads with protobuf-c's C structs in a reusable arena.
///
/// protobuf-c's unpack allocates every submessage and repeated array of a frame on its own
/// (~130 allocations for a 64-sample batch) and `free_unpacked` walks them all again to free
/// them: a fifth of the server's CPU with 64-sample frames (perf, issue #17). Through its
/// `ProtobufCAllocator` hook they come from one block instead, and the whole frame's C memory
/// is dropped at once after its values are copied into Swift.
///
/// A payload holding only a `SampleBatch` in the plain shape is read by `SampleBatchParser`
/// without protobuf-c (the same values; every other payload, and any the parser declines,
/// goes through protobuf-c as above).
///
/// Ownership and threading: keep one per thread (the server: one per reactor worker); not
/// thread-safe. Memory: the block is kept between frames and grows to fit the largest frame
/// seen, up to 4 MiB (`ScratchArena`); anything past that is taken from the heap and freed
/// when the frame is done. What one frame decodes to is bounded by `maxDecodedBytes` on
/// both paths (its samples and gauges as Swift values; protobuf-c's structs), so a peer's
/// frame of empty fields cannot make 4 MiB into hundreds of MB.
public final class MessageDecoder {
    private let arena = ScratchArena()
    /// Gauge names seen in this thread's frames, shared by the samples that carry them again.
    private let gaugeNames = GaugeNameCache()
    /// At most this many bytes of values per frame, else `WireError.decodesTooLarge`.
    public let maxDecodedBytes: Int

    /// 64 MiB: sixteen times gRPC's 4 MiB message cap (`FrameFormat.defaultMaxFrameSize`).
    /// Real frames decode to about 1–2 times their bytes as values and 6–12 times in
    /// protobuf-c's structs (`DecodeBudgetTests`: agent-shaped batches, long and one-letter
    /// gauge names); a peer's empty samples or gauges to 12–44 times as values and over 100
    /// in protobuf-c's structs (one 3.8 MB frame of 1.9 M empty samples took the server's
    /// peak RSS from 26 to 189 MB, and to 537 MB through protobuf-c, before this budget).
    public static let defaultMaxDecodedBytes = 16 * FrameFormat.defaultMaxFrameSize

    public init(maxDecodedBytes: Int = MessageDecoder.defaultMaxDecodedBytes) {
        self.maxDecodedBytes = maxDecodedBytes
        arena.budget = maxDecodedBytes
    }

    /// Decodes one frame payload; the same errors as `Message(payload:)`, and
    /// `.decodesTooLarge` past `maxDecodedBytes`.
    public func decode(_ payload: UnsafeRawBufferPointer) throws(WireError) -> Message {
        if let batch = try SampleBatchParser.parse(payload, names: gaugeNames, maxBytes: maxDecodedBytes) { return .samples(batch) }
        defer { arena.reset() }
        var allocator = ProtobufCAllocator(
            alloc: { data, size in
                Unmanaged<ScratchArena>.fromOpaque(data!).takeUnretainedValue().allocate(byteCount: size)
            },
            free: { _, _ in },  // everything goes at once, at reset
            allocator_data: Unmanaged.passUnretained(arena).toOpaque())
        do {
            return try Message(payload: payload, allocator: &allocator)
        } catch {
            // protobuf-c says only that it failed; the arena knows when it ran out of budget.
            if arena.exhausted { throw .decodesTooLarge(length: payload.count, limit: maxDecodedBytes) }
            throw error
        }
    }
}

/// Decoding a frame payload (a serialized `gridmon.v1.Frame`) into a `Message`, via protobuf-c.
///
/// protobuf-c parses into C structs; they are copied into Swift values before returning, on
/// every path, so no C memory outlives the call.
extension Message {
    /// Decodes one frame payload, with protobuf-c's C structs on the heap (for one-off
    /// decoding; a loop over frames wants a `MessageDecoder`).
    ///
    /// - Throws: `WireError.unparseableProtobuf` when protobuf-c rejects the bytes (bad
    ///   varint, wrong wire type, truncated field), `.missingBody` for a `Frame` with nothing
    ///   set, `.unknownBody` when it holds a message number this build does not know.
    public init(payload: UnsafeRawBufferPointer) throws(WireError) {
        try self.init(payload: payload, allocator: nil)
    }

    /// With `allocator` nil the C structs come from malloc and are freed here; otherwise they
    /// belong to the allocator (an arena the caller resets).
    init(payload: UnsafeRawBufferPointer, allocator: UnsafeMutablePointer<ProtobufCAllocator>?) throws(WireError) {
        // protobuf-c reads nothing when the length is 0, but wants a pointer all the same.
        var empty: UInt8 = 0
        let frame = withUnsafePointer(to: &empty) { emptyPointer in
            gridmon__v1__frame__unpack(
                allocator, payload.count, payload.baseAddress?.assumingMemoryBound(to: UInt8.self) ?? emptyPointer)
        }
        guard let frame else { throw .unparseableProtobuf(length: payload.count) }
        defer { if allocator == nil { gridmon__v1__frame__free_unpacked(frame, nil) } }

        let f = frame.pointee
        switch f.body_case {
        case GRIDMON__V1__FRAME__BODY_HELLO: self = .hello(Hello(f.hello.pointee))
        case GRIDMON__V1__FRAME__BODY_WELCOME: self = .welcome(Welcome(f.welcome.pointee))
        case GRIDMON__V1__FRAME__BODY_SAMPLES: self = .samples(SampleBatch(f.samples.pointee))
        case GRIDMON__V1__FRAME__BODY_ACK: self = .ack(Ack(f.ack.pointee))
        case GRIDMON__V1__FRAME__BODY_PING: self = .ping(Ping(nonce: f.ping.pointee.nonce))
        case GRIDMON__V1__FRAME__BODY_PONG: self = .pong(Pong(nonce: f.pong.pointee.nonce))
        case GRIDMON__V1__FRAME__BODY_GOODBYE: self = .goodbye(Goodbye(reason: string(f.goodbye.pointee.reason)))
        case GRIDMON__V1__FRAME__BODY_ERROR:
            let e = f.error.pointee
            self = .error(ErrorMessage(code: StatusCode(rawValue: e.code), message: string(e.message), streamID: e.stream_id))
        default:
            // Every field of Frame is in the oneof, so any field protobuf-c kept as unknown is
            // a body member from a newer schema.
            if f.base.n_unknown_fields > 0, let unknown = f.base.unknown_fields {
                throw .unknownBody(fieldNumber: unknown[0].tag)
            }
            throw .missingBody
        }
    }
}

/// A Swift string from a protobuf-c string field (never NULL after unpack; tolerated anyway).
/// Invalid UTF-8 is repaired with U+FFFD rather than rejected.
@inline(__always)
private func string(_ pointer: UnsafePointer<CChar>?) -> String {
    pointer.map { String(cString: $0) } ?? ""
}

/// The elements of a protobuf-c repeated message field (`n_x`, `x`), converted.
@inline(__always)
private func repeated<C, T>(_ count: Int, _ items: UnsafeMutablePointer<UnsafeMutablePointer<C>?>?, _ convert: (C) -> T) -> [T] {
    guard count > 0, let items else { return [] }
    var result: [T] = []
    result.reserveCapacity(count)
    for i in 0..<count {
        if let item = items[i] { result.append(convert(item.pointee)) }
    }
    return result
}

extension Hello {
    init(_ c: Gridmon__V1__Hello) {
        self.init(
            protocolVersion: c.protocol_version, nodeID: string(c.node_id),
            agentVersion: string(c.agent_version),
            labels: repeated(c.n_labels, c.labels) { Label(key: string($0.key), value: string($0.value)) },
            authToken: string(c.auth_token), streamID: c.stream_id, instanceID: string(c.instance_id))
    }
}

extension Welcome {
    init(_ c: Gridmon__V1__Welcome) {
        self.init(
            streamID: c.stream_id, accepted: c.accepted != 0, serverID: string(c.server_id),
            durableSeq: c.durable_seq,
            limits: c.limits.map {
                ServerLimits(
                    maxFrameBytes: $0.pointee.max_frame_bytes,
                    keepaliveIntervalMs: $0.pointee.keepalive_interval_ms,
                    maxStreams: $0.pointee.max_streams)
            },
            message: string(c.message))
    }
}

extension SampleBatch {
    init(_ c: Gridmon__V1__SampleBatch) {
        self.init(
            streamID: c.stream_id,
            samples: repeated(c.n_samples, c.samples) { s in
                Sample(
                    seq: s.seq, timestampNs: s.timestamp_ns, cpuPercent: s.cpu_percent,
                    memoryPercent: s.memory_percent, diskPercent: s.disk_percent, load1: s.load1,
                    netRxBytesPerSec: s.net_rx_bytes_per_s, netTxBytesPerSec: s.net_tx_bytes_per_s,
                    diskReadBytesPerSec: s.disk_read_bytes_per_s,
                    diskWriteBytesPerSec: s.disk_write_bytes_per_s,
                    extra: repeated(s.n_extra, s.extra) { Gauge(name: string($0.name), value: $0.value) })
            })
    }
}

extension Ack {
    init(_ c: Gridmon__V1__Ack) {
        self.init(
            streamID: c.stream_id, durableSeq: c.durable_seq,
            anomalies: repeated(c.n_anomalies, c.anomalies) { Verdict(seq: $0.seq, score: $0.score) },
            detector: DetectorState(rawValue: c.detector.rawValue) ?? .unspecified)
    }
}
