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
    /// Extra gauges whose name InfluxDB would refuse or misread, or that repeat a name in one
    /// sample (`MetricNames.isWritableFieldKey`).
    public var badNames = 0
    public init() {}

    public mutating func add(_ other: LineProtocolDrops) {
        nonFiniteFields += other.nonFiniteFields
        newlineElements += other.newlineElements
        emptyTags += other.emptyTags
        points += other.points
        badNames += other.badNames
    }
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
        out.append(contentsOf: Self.seriesKey(measurement: point.measurement, tags: point.tags, drops: &drops)!)
        out.append(UInt8(ascii: " "))
        for (index, field) in fields.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            Self.escape(field.key, special: Self.keySpecials, into: &out)
            out.append(UInt8(ascii: "="))
            switch field.value {
            case .float(let v): Self.appendFloat(v, to: &out)
            case .integer(let v):
                Self.appendInteger(v, to: &out)
                out.append(UInt8(ascii: "i"))
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
        Self.appendInteger(point.timestampNs, to: &out)
        out.append(UInt8(ascii: "\n"))
        return true
    }

    /// The escaped `measurement,tag=value,...` prefix (tags sorted by key); nil when the
    /// measurement cannot be written. Tags with empty or newline-bearing parts are left out.
    public static func seriesKey(measurement: String, tags: [(key: String, value: String)], drops: inout LineProtocolDrops) -> [UInt8]? {
        guard !measurement.isEmpty, !hasNewline(measurement) else { return nil }
        var out: [UInt8] = []
        escape(measurement, special: [UInt8(ascii: ","), UInt8(ascii: " ")], into: &out)
        for tag in tags.sorted(by: { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }) {
            if tag.key.isEmpty || tag.value.isEmpty { drops.emptyTags += 1; continue }
            if hasNewline(tag.key) || hasNewline(tag.value) { drops.newlineElements += 1; continue }
            out.append(UInt8(ascii: ","))
            escape(tag.key, special: keySpecials, into: &out)
            out.append(UInt8(ascii: "="))
            escape(tag.value, special: keySpecials, into: &out)
        }
        return out
    }

    /// Decimal digits of `value`, without a String.
    @inline(__always)
    static func appendInteger(_ value: Int64, to out: inout [UInt8]) {
        if value < 0 { out.append(UInt8(ascii: "-")) }
        var magnitude = value.magnitude
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // 24 bytes of scratch, enough for 20 digits
        withUnsafeMutableBytes(of: &digits) { raw in
            var i = raw.count
            repeat {
                i -= 1
                raw[i] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
            } while magnitude > 0
            out.append(contentsOf: raw[i...])
        }
    }

    @inline(__always)
    static func appendFloat(_ value: Double, to out: inout [UInt8]) {
        if value == value.rounded(.towardZero) && abs(value) < 1e15 {
            appendInteger(Int64(value), to: &out)  // whole numbers print as integers would; still a float without `i`
            return
        }
        var text = value.description
        text.withUTF8 { out.append(contentsOf: $0) }
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

}
