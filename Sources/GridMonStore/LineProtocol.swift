/// One point in InfluxDB's line protocol: measurement, tags, fields, nanosecond timestamp.
public struct Point: Sendable, Equatable {
    public enum Value: Sendable, Equatable {
        case float(Double)
        case integer(Int64)
        case boolean(Bool)
        case string(String)
    }

    public var measurement: String
    public var tags: [(key: String, value: String)]
    public var fields: [(key: String, value: Value)]
    public var timestampNs: Int64

    public init(measurement: String, tags: [(key: String, value: String)] = [], fields: [(key: String, value: Value)], timestampNs: Int64) {
        self.measurement = measurement
        self.tags = tags
        self.fields = fields
        self.timestampNs = timestampNs
    }

    public static func == (a: Point, b: Point) -> Bool {
        a.measurement == b.measurement && a.timestampNs == b.timestampNs
            && a.tags.map(\.key) == b.tags.map(\.key) && a.tags.map(\.value) == b.tags.map(\.value)
            && a.fields.map(\.key) == b.fields.map(\.key) && a.fields.map(\.value) == b.fields.map(\.value)
    }
}

/// What the encoder had to leave out, by reason. Never silent: the sink exports these.
public struct LineProtocolDrops: Sendable, Equatable {
    /// NaN and ±Inf field values: not representable in line protocol.
    public var nonFiniteFields = 0
    /// Tags or fields whose key or value held a newline (line protocol has no escape for it).
    public var newlineElements = 0
    /// Tags with an empty key or value (InfluxDB rejects them; the tag is omitted).
    public var emptyTags = 0
    /// Whole points: bad measurement, or no field left.
    public var points = 0
    public init() {}
}

/// Encodes points as InfluxDB line protocol, escaping exactly as its reference says
/// (https://docs.influxdata.com/influxdb/v1/write_protocols/line_protocol_reference/):
///
/// - measurement: `,` and space are escaped with `\`;
/// - tag keys, tag values and field keys: `,`, `=` and space are escaped;
/// - string field values: in double quotes, with `"` and `\` escaped;
/// - tags are sorted by key (InfluxDB's advice, and one series key per tag set);
/// - floats in shortest round-trip form, integers with `i`, booleans `true`/`false`;
/// - timestamps in nanoseconds.
///
/// Line protocol cannot carry a newline in any element, nor NaN or ±Inf: such tags and
/// fields are left out and counted in `drops`; a point with no field left is dropped whole.
/// It has no escape for `\` either: InfluxDB's parser reads `\X` as one unit for any X, so a
/// run of backslashes ending an element or preceding an escaped character gets one more `\`
/// when its length is odd. The line then always parses as written; InfluxDB keeps the extra
/// backslash in those (rare) values, and every other value is stored exactly. Pure.
public struct LineProtocolEncoder: Sendable {
    public private(set) var drops = LineProtocolDrops()

    public init() {}

    /// Appends one line (with its trailing newline) for `point`; false if the point was dropped.
    @discardableResult
    public mutating func append(_ point: Point, to out: inout [UInt8]) -> Bool {
        guard !point.measurement.isEmpty, !Self.hasNewline(point.measurement) else {
            drops.points += 1
            return false
        }
        var fields: [(key: String, value: Point.Value)] = []
        for field in point.fields {
            if Self.hasNewline(field.key) || field.key.isEmpty { drops.newlineElements += 1; continue }
            switch field.value {
            case .float(let v) where !v.isFinite: drops.nonFiniteFields += 1; continue
            case .string(let s) where Self.hasNewline(s): drops.newlineElements += 1; continue
            default: fields.append(field)
            }
        }
        guard !fields.isEmpty else {
            drops.points += 1
            return false
        }
        Self.escape(point.measurement, special: [UInt8(ascii: ","), UInt8(ascii: " ")], into: &out)
        for tag in point.tags.sorted(by: { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }) {
            if tag.key.isEmpty || tag.value.isEmpty { drops.emptyTags += 1; continue }
            if Self.hasNewline(tag.key) || Self.hasNewline(tag.value) { drops.newlineElements += 1; continue }
            out.append(UInt8(ascii: ","))
            Self.escape(tag.key, special: Self.keySpecials, into: &out)
            out.append(UInt8(ascii: "="))
            Self.escape(tag.value, special: Self.keySpecials, into: &out)
        }
        out.append(UInt8(ascii: " "))
        for (index, field) in fields.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            Self.escape(field.key, special: Self.keySpecials, into: &out)
            out.append(UInt8(ascii: "="))
            switch field.value {
            case .float(let v): out.append(contentsOf: Self.format(v).utf8)
            case .integer(let v): out.append(contentsOf: "\(v)i".utf8)
            case .boolean(let v): out.append(contentsOf: (v ? "true" : "false").utf8)
            case .string(let s):
                out.append(UInt8(ascii: "\""))
                for byte in s.utf8 {
                    if byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") { out.append(UInt8(ascii: "\\")) }
                    out.append(byte)
                }
                out.append(UInt8(ascii: "\""))
            }
        }
        out.append(UInt8(ascii: " "))
        out.append(contentsOf: "\(point.timestampNs)".utf8)
        out.append(UInt8(ascii: "\n"))
        return true
    }

    static let keySpecials: [UInt8] = [UInt8(ascii: ","), UInt8(ascii: "="), UInt8(ascii: " ")]

    static func hasNewline(_ s: String) -> Bool {
        s.utf8.contains { $0 == 0x0A || $0 == 0x0D }
    }

    /// Escapes `special` bytes. InfluxDB's scanner reads `\X` as one escaped unit for any X,
    /// so a run of backslashes right before a special byte (which gets its own `\`) or the
    /// end of the element must have even length to pair with itself; an odd run gets one
    /// more backslash. Every other backslash is written as is (and stored as is).
    static func escape(_ s: String, special: [UInt8], into out: inout [UInt8]) {
        var run = 0
        for byte in s.utf8 {
            if byte == UInt8(ascii: "\\") {
                run += 1
                out.append(byte)
                continue
            }
            if special.contains(byte) {
                if run % 2 == 1 { out.append(UInt8(ascii: "\\")) }
                out.append(UInt8(ascii: "\\"))
            }
            run = 0
            out.append(byte)
        }
        if run % 2 == 1 { out.append(UInt8(ascii: "\\")) }
    }

    /// Shortest text that reads back as the same Double (`1.0` stays a float, not `1`).
    static func format(_ v: Double) -> String {
        var text = "\(v)"
        if text.hasSuffix(".0") { text.removeLast(2) }  // "100.0" → "100"; still a float without the `i`
        return text
    }
}
