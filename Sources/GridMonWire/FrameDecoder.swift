/// Incremental decoder of the GridMon byte stream: preface, then length-prefixed frames.
///
/// An explicit state machine fed with whatever chunks the socket returns, down to one byte
/// at a time. Complete frames are handed to the caller as payload bytes (the protobuf
/// `Frame`, still encoded); decode them with `Message(payload:)`.
///
/// Memory: a frame that lies whole inside one chunk is handed over in place, without a
/// copy. Only a frame split across chunks is copied into `pending`, after its announced length
/// was checked against `maxFrameSize`; `pending` grows with the bytes that actually arrive
/// (at most 64 KiB is reserved up front), so announcing a large frame and sending it slowly
/// costs the peer as much as it costs the decoder (issue #10, defect 5).
///
/// Errors: every framing error is a `WireError` and final: the stream cannot be resynced, so
/// the decoder stays failed and the connection should be closed. Ownership and threading:
/// a value type owned by one connection; not shared between threads.
public struct FrameDecoder: Sendable {
    enum State: Equatable, Sendable {
        /// `matched` bytes of the preface were seen so far.
        case preface(matched: Int)
        /// `have` bytes of the 5-byte frame header were seen; the flag byte (if seen) was 0 and
        /// `length` holds the length bytes seen so far.
        case header(have: Int, length: UInt32)
        /// The header announced `length` payload bytes; `pending` holds those seen so far.
        case payload(length: Int)
        /// A framing error happened or the frame handler threw.
        case failed
    }

    /// The largest payload accepted, in bytes. May be changed between reads (a server raises
    /// it once the peer has authenticated); it applies to frames whose header comes later.
    public var maxFrameSize: Int
    private(set) var state: State
    private var pending: [UInt8] = []

    /// A `pending` buffer grown past this is released after use rather than kept for the
    /// next split frame, so one large frame does not pin memory on an idle connection.
    private static let retainedPendingCapacity = 64 * 1024

    /// - Parameters:
    ///   - maxFrameSize: largest payload accepted; larger announced lengths fail before any
    ///     allocation. Defaults to 4 MiB, gRPC's default.
    ///   - expectPreface: whether the stream starts with the 8-byte preface (true on a live
    ///     connection; false for bare frame sequences such as recorded files).
    public init(maxFrameSize: Int = FrameFormat.defaultMaxFrameSize, expectPreface: Bool = true) {
        precondition(maxFrameSize >= 0 && maxFrameSize <= Int(UInt32.max), "maxFrameSize must fit 32 bits")
        self.maxFrameSize = maxFrameSize
        self.state = expectPreface ? .preface(matched: 0) : .header(have: 0, length: 0)
    }

    /// True once the preface was read (or none was expected) and no frame is half read.
    public var isAtFrameBoundary: Bool { state == .header(have: 0, length: 0) }

    /// True after an error; every later call throws `WireError.decoderFailed`.
    public var hasFailed: Bool { state == .failed }

    /// Bytes of a split frame held until the rest arrives (for memory accounting).
    public var bufferedBytes: Int { pending.count }

    /// Bytes reserved for split frames (for tests of the memory bound).
    public var pendingCapacity: Int { pending.capacity }

    /// Thrown by a frame handler that wants to change the decoder (say, raise `maxFrameSize`
    /// after an authenticating frame) before the next frame is read: `decode` then returns the
    /// bytes it consumed, without failing, and the caller decodes the rest afterwards.
    public struct Pause: Error {
        public init() {}
    }

    /// Decodes `chunk`, calling `onFrame` with the payload of every frame it completes.
    ///
    /// The payload buffer is only valid during the call. If `onFrame` throws, decoding stops,
    /// the rest of the chunk is not read, the decoder fails, and the error propagates — except
    /// for `Pause`, which stops after that frame and returns the bytes consumed.
    /// - Returns: bytes consumed: `chunk.count`, or less after a `Pause`.
    /// - Throws: `WireError` for bad framing; whatever `onFrame` throws.
    @discardableResult
    public mutating func decode(
        _ chunk: UnsafeRawBufferPointer, onFrame: (UnsafeRawBufferPointer) throws -> Void
    ) throws -> Int {
        let end = chunk.count
        var index = 0
        do {
            try decodeLoop(chunk, &index, end, onFrame)
        } catch is Pause {
            return index
        }
        return end
    }

    private mutating func decodeLoop(
        _ chunk: UnsafeRawBufferPointer, _ index: inout Int, _ end: Int, _ onFrame: (UnsafeRawBufferPointer) throws -> Void
    ) throws {
        while index < end {
            switch state {
            case .preface(let matched):
                try readPreface(chunk, &index, matched: matched)

            case .header(0, _) where end - index >= FrameFormat.headerSize:
                // Fast path: the whole header is in this chunk.
                let flag = chunk[index]
                guard flag == FrameFormat.uncompressed else { throw fail(.badFlag(flag)) }
                let length = chunk.loadUnaligned(fromByteOffset: index + 1, as: UInt32.self).bigEndian
                index += FrameFormat.headerSize
                try beginPayload(length: length, chunk, &index, onFrame)

            case .header(let have, let length):
                let byte = chunk[index]
                index += 1
                if have == 0 {
                    guard byte == FrameFormat.uncompressed else { throw fail(.badFlag(byte)) }
                    state = .header(have: 1, length: 0)
                } else if have + 1 < FrameFormat.headerSize {
                    state = .header(have: have + 1, length: length << 8 | UInt32(byte))
                } else {
                    try beginPayload(length: length << 8 | UInt32(byte), chunk, &index, onFrame)
                }

            case .payload(let length):
                let take = min(length - pending.count, end - index)
                pending.append(contentsOf: UnsafeRawBufferPointer(rebasing: chunk[index..<index + take]))
                index += take
                if pending.count == length {
                    state = .header(have: 0, length: 0)
                    var frame: [UInt8] = []
                    swap(&frame, &pending)
                    try frame.withUnsafeBytes { try deliver($0, onFrame) }
                    if frame.capacity <= Self.retainedPendingCapacity {
                        frame.removeAll(keepingCapacity: true)
                        pending = frame
                    }
                }

            case .failed:
                throw WireError.decoderFailed
            }
        }
    }

    /// Decodes bytes held in any contiguous collection (tests, tools). See `decode(_:onFrame:)`.
    @discardableResult
    public mutating func decode(
        bytes: some Sequence<UInt8>, onFrame: (UnsafeRawBufferPointer) throws -> Void
    ) throws -> Int {
        try Array(bytes).withUnsafeBytes { try decode($0, onFrame: onFrame) }
    }

    /// Tells the decoder the peer closed the stream.
    ///
    /// - Throws: `WireError.truncated` if the stream ended inside the preface, a frame header
    ///   or a payload. A close before the first byte, or between frames, is clean.
    public mutating func finish() throws {
        let error: WireError
        switch state {
        case .preface(0), .header(0, _): return
        case .preface(let matched):
            error = .truncated(part: "connection preface", have: matched, need: Preface.bytes.count)
        case .header(let have, _):
            error = .truncated(part: "frame header", have: have, need: FrameFormat.headerSize)
        case .payload(let length):
            error = .truncated(part: "frame payload", have: pending.count, need: length)
        case .failed:
            error = .decoderFailed
        }
        throw fail(error)
    }

    // MARK: - Steps

    private mutating func readPreface(_ chunk: UnsafeRawBufferPointer, _ index: inout Int, matched: Int) throws {
        let byte = chunk[index]
        guard byte == Preface.bytes[matched] else {
            if matched == Preface.magic.count { throw fail(.unsupportedVersion(byte)) }
            // Show what the peer sent (up to one preface's length) so the log says who it was.
            let more = chunk[index..<min(chunk.count, index + Preface.bytes.count - matched)]
            throw fail(.badPreface(received: Array(Preface.bytes[..<matched]) + more))
        }
        index += 1
        state = matched + 1 == Preface.bytes.count ? .header(have: 0, length: 0) : .preface(matched: matched + 1)
    }

    /// Checks the announced length, then hands the payload over in place when the chunk holds
    /// all of it, or reserves exactly `length` bytes to collect it.
    private mutating func beginPayload(
        length: UInt32, _ chunk: UnsafeRawBufferPointer, _ index: inout Int,
        _ onFrame: (UnsafeRawBufferPointer) throws -> Void
    ) throws {
        guard Int(length) <= maxFrameSize else { throw fail(.oversizeFrame(length: length, limit: maxFrameSize)) }
        let length = Int(length)
        if chunk.count - index >= length {
            let payload = UnsafeRawBufferPointer(rebasing: chunk[index..<index + length])
            index += length
            state = .header(have: 0, length: 0)
            try deliver(payload, onFrame)
        } else {
            pending.reserveCapacity(min(length, Self.retainedPendingCapacity))
            state = .payload(length: length)
        }
    }

    private mutating func deliver(
        _ payload: UnsafeRawBufferPointer, _ onFrame: (UnsafeRawBufferPointer) throws -> Void
    ) throws {
        do {
            try onFrame(payload)
        } catch is Pause {
            throw Pause()  // the state is already at the next frame's boundary
        } catch {
            state = .failed
            throw error
        }
    }

    private mutating func fail(_ error: WireError) -> WireError {
        state = .failed
        pending = []
        return error
    }
}
