import CGridMonProto

/// Encodes `Message`s into frames (header + protobuf payload) via protobuf-c.
///
/// The message is laid out as protobuf-c structs in a reusable scratch arena, measured,
/// and packed straight into the caller's buffer: no per-field heap allocation and no
/// intermediate copy of the payload.
///
/// Ownership and threading: keep one encoder per thread (or per connection); it is not
/// thread-safe. It never fails: every `Message` value is encodable.
public final class MessageEncoder {
    private let arena = ScratchArena()

    public init() {}

    /// Appends one frame carrying `message` to `out`: flag 0, big-endian length, payload.
    /// - Returns: the number of bytes appended.
    @discardableResult
    public func appendFrame(_ message: Message, to out: inout [UInt8]) -> Int {
        let frame = build(message)
        defer { arena.reset() }
        let size = gridmon__v1__frame__get_packed_size(frame)
        // Not reachable from peer input: the server's messages carry validated ids and
        // acks whose verdicts are bounded by the sink's high-water mark (megabytes, not 4 GiB).
        precondition(size <= Int(UInt32.max), "a frame payload must fit a 32-bit length")
        let start = out.count
        // One append of the whole frame, then header and payload written in place.
        out.append(contentsOf: repeatElement(0, count: FrameFormat.headerSize + size))
        out.withUnsafeMutableBufferPointer { buffer in
            let frameStart = buffer.baseAddress! + start
            frameStart[0] = FrameFormat.uncompressed
            UnsafeMutableRawPointer(frameStart + 1).storeBytes(of: UInt32(size).bigEndian, as: UInt32.self)
            let written = gridmon__v1__frame__pack(frame, frameStart + FrameFormat.headerSize)
            assert(written == size)
        }
        return FrameFormat.headerSize + size
    }

    /// The protobuf payload of `message` alone, without the frame header.
    public func encodePayload(_ message: Message) -> [UInt8] {
        var out: [UInt8] = []
        appendFrame(message, to: &out)
        return Array(out.dropFirst(FrameFormat.headerSize))
    }

    // MARK: - Building the C structs (all memory from the arena)

    private func build(_ message: Message) -> UnsafeMutablePointer<Gridmon__V1__Frame> {
        let frame = arena.allocate(Gridmon__V1__Frame.self, count: 1)
        gridmon__v1__frame__init(frame)
        switch message {
        case .hello(let hello):
            frame.pointee.body_case = GRIDMON__V1__FRAME__BODY_HELLO
            frame.pointee.hello = build(hello)
        case .welcome(let welcome):
            frame.pointee.body_case = GRIDMON__V1__FRAME__BODY_WELCOME
            frame.pointee.welcome = build(welcome)
        case .samples(let batch):
            frame.pointee.body_case = GRIDMON__V1__FRAME__BODY_SAMPLES
            frame.pointee.samples = build(batch)
        case .ack(let ack):
            frame.pointee.body_case = GRIDMON__V1__FRAME__BODY_ACK
            frame.pointee.ack = build(ack)
        case .ping(let ping):
            let c = make(Gridmon__V1__Ping.self, gridmon__v1__ping__init)
            c.pointee.nonce = ping.nonce
            frame.pointee.body_case = GRIDMON__V1__FRAME__BODY_PING
            frame.pointee.ping = c
        case .pong(let pong):
            let c = make(Gridmon__V1__Pong.self, gridmon__v1__pong__init)
            c.pointee.nonce = pong.nonce
            frame.pointee.body_case = GRIDMON__V1__FRAME__BODY_PONG
            frame.pointee.pong = c
        case .goodbye(let goodbye):
            let c = make(Gridmon__V1__Goodbye.self, gridmon__v1__goodbye__init)
            c.pointee.reason = arena.cString(goodbye.reason)
            frame.pointee.body_case = GRIDMON__V1__FRAME__BODY_GOODBYE
            frame.pointee.goodbye = c
        case .error(let error):
            let c = make(Gridmon__V1__Error.self, gridmon__v1__error__init)
            c.pointee.code = error.code.rawValue
            c.pointee.message = arena.cString(error.message)
            c.pointee.stream_id = error.streamID
            frame.pointee.body_case = GRIDMON__V1__FRAME__BODY_ERROR
            frame.pointee.error = c
        }
        return frame
    }

    /// One struct from the arena, initialised by its generated `__init` function.
    @inline(__always)
    private func make<T>(_: T.Type, _ initialize: (UnsafeMutablePointer<T>) -> Void) -> UnsafeMutablePointer<T> {
        let pointer = arena.allocate(T.self, count: 1)
        initialize(pointer)
        return pointer
    }

    /// `count` structs and the pointer array protobuf-c wants for a repeated field;
    /// `fill` sets the fields of element `i`, already initialised.
    @inline(__always)
    private func repeated<T>(
        _ count: Int, _ initialize: (UnsafeMutablePointer<T>) -> Void,
        _ fill: (Int, UnsafeMutablePointer<T>) -> Void
    ) -> UnsafeMutablePointer<UnsafeMutablePointer<T>?>? {
        guard count > 0 else { return nil }
        let items = arena.allocate(T.self, count: count)
        let pointers = arena.allocate(UnsafeMutablePointer<T>?.self, count: count)
        for i in 0..<count {
            initialize(items + i)
            fill(i, items + i)
            pointers[i] = items + i
        }
        return pointers
    }

    private func build(_ hello: Hello) -> UnsafeMutablePointer<Gridmon__V1__Hello> {
        let c = make(Gridmon__V1__Hello.self, gridmon__v1__hello__init)
        c.pointee.protocol_version = hello.protocolVersion
        c.pointee.node_id = arena.cString(hello.nodeID)
        c.pointee.agent_version = arena.cString(hello.agentVersion)
        c.pointee.n_labels = hello.labels.count
        c.pointee.labels = repeated(hello.labels.count, gridmon__v1__label__init) { i, label in
            label.pointee.key = arena.cString(hello.labels[i].key)
            label.pointee.value = arena.cString(hello.labels[i].value)
        }
        c.pointee.auth_token = arena.cString(hello.authToken)
        c.pointee.stream_id = hello.streamID
        c.pointee.instance_id = arena.cString(hello.instanceID)
        return c
    }

    private func build(_ welcome: Welcome) -> UnsafeMutablePointer<Gridmon__V1__Welcome> {
        let c = make(Gridmon__V1__Welcome.self, gridmon__v1__welcome__init)
        c.pointee.stream_id = welcome.streamID
        c.pointee.accepted = welcome.accepted ? 1 : 0
        c.pointee.server_id = arena.cString(welcome.serverID)
        c.pointee.durable_seq = welcome.durableSeq
        if let limits = welcome.limits {
            let l = make(Gridmon__V1__ServerLimits.self, gridmon__v1__server_limits__init)
            l.pointee.max_frame_bytes = limits.maxFrameBytes
            l.pointee.keepalive_interval_ms = limits.keepaliveIntervalMs
            l.pointee.max_streams = limits.maxStreams
            c.pointee.limits = l
        }
        c.pointee.message = arena.cString(welcome.message)
        return c
    }

    private func build(_ batch: SampleBatch) -> UnsafeMutablePointer<Gridmon__V1__SampleBatch> {
        let c = make(Gridmon__V1__SampleBatch.self, gridmon__v1__sample_batch__init)
        c.pointee.stream_id = batch.streamID
        c.pointee.n_samples = batch.samples.count
        c.pointee.samples = batch.samples.withUnsafeBufferPointer { samples in
            repeated(samples.count, gridmon__v1__sample__init) { i, s in
                let sample = samples[i]
                s.pointee.seq = sample.seq
                s.pointee.timestamp_ns = sample.timestampNs
                s.pointee.cpu_percent = sample.cpuPercent
                s.pointee.memory_percent = sample.memoryPercent
                s.pointee.disk_percent = sample.diskPercent
                s.pointee.load1 = sample.load1
                s.pointee.net_rx_bytes_per_s = sample.netRxBytesPerSec
                s.pointee.net_tx_bytes_per_s = sample.netTxBytesPerSec
                s.pointee.disk_read_bytes_per_s = sample.diskReadBytesPerSec
                s.pointee.disk_write_bytes_per_s = sample.diskWriteBytesPerSec
                s.pointee.n_extra = sample.extra.count
                s.pointee.extra = repeated(sample.extra.count, gridmon__v1__gauge__init) { j, gauge in
                    gauge.pointee.name = arena.cString(sample.extra[j].name)
                    gauge.pointee.value = sample.extra[j].value
                }
            }
        }
        return c
    }

    private func build(_ ack: Ack) -> UnsafeMutablePointer<Gridmon__V1__Ack> {
        let c = make(Gridmon__V1__Ack.self, gridmon__v1__ack__init)
        c.pointee.stream_id = ack.streamID
        c.pointee.durable_seq = ack.durableSeq
        c.pointee.detector = Gridmon__V1__DetectorState(rawValue: ack.detector.rawValue)
        c.pointee.n_anomalies = ack.anomalies.count
        c.pointee.anomalies = repeated(ack.anomalies.count, gridmon__v1__verdict__init) { i, verdict in
            verdict.pointee.seq = ack.anomalies[i].seq
            verdict.pointee.score = ack.anomalies[i].score
        }
        return c
    }
}
