/// The connection preface and frame layout constants of the GridMon wire protocol.
///
/// Each side of a connection first sends the 8-byte preface: ASCII `GRIDMON` and the protocol
/// version byte. A stray HTTP client or port scanner fails on its first byte, so the peer is
/// rejected at once with a clear error instead of being read as a (huge) frame length.
public enum Preface {
    /// Protocol version carried in the last preface byte and in `Hello.protocol_version`.
    public static let version: UInt32 = 1
    /// The magic, without the version byte.
    public static let magic: [UInt8] = Array("GRIDMON".utf8)
    /// The full preface this version sends: magic + version byte.
    public static let bytes: [UInt8] = magic + [UInt8(version)]
}

/// Frame layout, as in gRPC's Length-Prefixed-Message: a flag byte, a 4-byte big-endian
/// length, then the protobuf payload.
public enum FrameFormat {
    /// Flag byte + 32-bit length.
    public static let headerSize = 5
    /// The only flag value v1 accepts: uncompressed. No compression is negotiated in v1.
    public static let uncompressed: UInt8 = 0
    /// Default maximum payload: 4 MiB, gRPC's default maximum receive message size.
    public static let defaultMaxFrameSize = 4 * 1024 * 1024
}
