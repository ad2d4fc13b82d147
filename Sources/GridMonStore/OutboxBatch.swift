/// The payload of one outbox record: the samples one stream accepted in one flush, as
/// line protocol, with what the server needs to rebuild its state on start (tenant, node,
/// highest seq). Pure; little-endian binary:
///
///     u8 version (1), u16 tenant length, tenant, u16 node length, node,
///     u64 highest seq, u32 sample count, u32 lines length, lines (line protocol)
public struct OutboxBatch: Sendable, Equatable {
    public var tenant: String
    public var node: String
    public var highestSeq: UInt64
    public var sampleCount: Int
    public var lines: [UInt8]

    public init(tenant: String, node: String, highestSeq: UInt64, sampleCount: Int, lines: [UInt8]) {
        self.tenant = tenant
        self.node = node
        self.highestSeq = highestSeq
        self.sampleCount = sampleCount
        self.lines = lines
    }

    public struct DecodeError: Error, Equatable, CustomStringConvertible {
        public var description: String
    }

    public func encode() -> [UInt8] {
        var out: [UInt8] = [1]
        let tenantBytes = Array(tenant.utf8.prefix(Int(UInt16.max)))
        let nodeBytes = Array(node.utf8.prefix(Int(UInt16.max)))
        put(&out, UInt16(tenantBytes.count)); out += tenantBytes
        put(&out, UInt16(nodeBytes.count)); out += nodeBytes
        put(&out, highestSeq)
        put(&out, UInt32(sampleCount))
        put(&out, UInt32(lines.count)); out += lines
        return out
    }

    private func put<T: FixedWidthInteger>(_ out: inout [UInt8], _ value: T) {
        withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) }
    }

    public init(decoding bytes: ArraySlice<UInt8>) throws(DecodeError) {
        var position = bytes.startIndex
        func take(_ count: Int) throws(DecodeError) -> ArraySlice<UInt8> {
            guard count >= 0, bytes.endIndex - position >= count else { throw DecodeError(description: "outbox batch truncated") }
            defer { position += count }
            return bytes[position..<position + count]
        }
        func integer<T: FixedWidthInteger>(_: T.Type) throws(DecodeError) -> T {
            let slice = try take(MemoryLayout<T>.size)
            return slice.reversed().reduce(T(0)) { $0 << 8 | T($1) }
        }
        guard try integer(UInt8.self) == 1 else { throw DecodeError(description: "unknown outbox batch version") }
        let tenantLength = Int(try integer(UInt16.self))
        tenant = String(decoding: try take(tenantLength), as: UTF8.self)
        let nodeLength = Int(try integer(UInt16.self))
        node = String(decoding: try take(nodeLength), as: UTF8.self)
        highestSeq = try integer(UInt64.self)
        sampleCount = Int(try integer(UInt32.self))
        let linesLength = Int(try integer(UInt32.self))
        lines = Array(try take(linesLength))
        guard position == bytes.endIndex else { throw DecodeError(description: "outbox batch has trailing bytes") }
    }
}
