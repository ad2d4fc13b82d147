import Glibc
import GridMonCore
import Synchronization

/// Structured logging to stderr: one line per event, as logfmt
/// (`ts=2026-11-30T12:00:00.123Z level=info event=… key=value…`) or as one JSON object per line
/// (`{"ts":"…","level":"info","event":"…","key":…}`), chosen by `--log-format`.
///
/// Threading: safe from any thread (one `write(2)` per line, so lines never interleave).
/// logfmt values with spaces, quotes or `=` are quoted, so the lines stay machine-readable;
/// JSON carries integers, finite floats and booleans as JSON values, everything else as strings.
public enum Log {
    public enum Level: Int, Sendable, Comparable, CustomStringConvertible {
        case debug, info, warning, error
        public static func < (a: Level, b: Level) -> Bool { a.rawValue < b.rawValue }
        public var description: String { ["debug", "info", "warn", "error"][rawValue] }
        public init?(name: String) {
            switch name.lowercased() {
            case "debug": self = .debug
            case "info": self = .info
            case "warn", "warning": self = .warning
            case "error": self = .error
            default: return nil
            }
        }
    }

    /// How a line is written.
    public enum Format: Int, Sendable {
        case logfmt, json
        public init?(name: String) {
            switch name.lowercased() {
            case "logfmt": self = .logfmt
            case "json": self = .json
            default: return nil
            }
        }
    }

    private static let minimum = Atomic<Int>(Level.info.rawValue)
    private static let format = Atomic<Int>(Format.logfmt.rawValue)

    /// Lines below `level` are dropped.
    public static func setLevel(_ level: Level) { minimum.store(level.rawValue, ordering: .relaxed) }

    /// Lines from now on are written as `format`.
    public static func setFormat(_ format: Format) { Self.format.store(format.rawValue, ordering: .relaxed) }

    public static func debug(_ event: String, _ fields: KeyValuePairs<String, Any> = [:]) { emit(.debug, event, fields) }
    public static func info(_ event: String, _ fields: KeyValuePairs<String, Any> = [:]) { emit(.info, event, fields) }
    public static func warning(_ event: String, _ fields: KeyValuePairs<String, Any> = [:]) { emit(.warning, event, fields) }
    public static func error(_ event: String, _ fields: KeyValuePairs<String, Any> = [:]) { emit(.error, event, fields) }

    private static func emit(_ level: Level, _ event: String, _ fields: KeyValuePairs<String, Any>) {
        guard level.rawValue >= minimum.load(ordering: .relaxed) else { return }
        var line = render(level, event, fields, nowNs: Clock.unixNanos(), format: Format(rawValue: format.load(ordering: .relaxed)) ?? .logfmt)
        line.withUTF8 { _ = Glibc.write(2, $0.baseAddress, $0.count) }
    }

    /// One log line, newline included. Pure; public for tests.
    public static func render(_ level: Level, _ event: String, _ fields: KeyValuePairs<String, Any>, nowNs: Int64, format: Format) -> String {
        let ts = RFC3339.format(ns: nowNs)
        switch format {
        case .logfmt:
            var line = "ts=\(ts) level=\(level) event=\(quote(event))"
            for (key, value) in fields { line += " \(key)=\(quote(String(describing: value)))" }
            return line + "\n"
        case .json:
            var line = "{\"ts\":\"\(ts)\",\"level\":\"\(level)\",\"event\":" + JSONText.quoted(event)
            for (key, value) in fields { line += "," + JSONText.quoted(key) + ":" + json(value) }
            return line + "}\n"
        }
    }

    private static func json(_ value: Any) -> String {
        switch value {
        case let v as Bool: return v ? "true" : "false"
        case let v as Int: return String(v)
        case let v as Int64: return String(v)
        case let v as UInt64: return String(v)
        case let v as Int32: return String(v)
        case let v as UInt32: return String(v)
        case let v as UInt16: return String(v)
        case let v as UInt8: return String(v)
        case let v as Double where v.isFinite: return String(v)
        default: return JSONText.quoted(String(describing: value))
        }
    }

    private static func quote(_ value: String) -> String {
        guard value.isEmpty || value.contains(where: { $0 == " " || $0 == "\"" || $0 == "=" || $0 == "\n" }) else { return value }
        return "\"" + value.replacingAll("\\", "\\\\").replacingAll("\"", "\\\"").replacingAll("\n", "\\n") + "\""
    }
}

extension String {
    fileprivate func replacingAll(_ target: Character, _ replacement: String) -> String {
        var out = ""
        for character in self { if character == target { out += replacement } else { out.append(character) } }
        return out
    }
}
