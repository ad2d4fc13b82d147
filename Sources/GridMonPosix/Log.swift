import Glibc
import Synchronization

/// Structured logging to stderr: one line per event, `ts=… level=… event=… key=value…`.
///
/// Threading: safe from any thread (one `write(2)` per line, so lines never interleave).
/// Values with spaces, quotes or `=` are quoted, so the lines stay machine-readable.
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

    private static let minimum = Atomic<Int>(Level.info.rawValue)

    /// Lines below `level` are dropped.
    public static func setLevel(_ level: Level) { minimum.store(level.rawValue, ordering: .relaxed) }

    public static func debug(_ event: String, _ fields: KeyValuePairs<String, Any> = [:]) { emit(.debug, event, fields) }
    public static func info(_ event: String, _ fields: KeyValuePairs<String, Any> = [:]) { emit(.info, event, fields) }
    public static func warning(_ event: String, _ fields: KeyValuePairs<String, Any> = [:]) { emit(.warning, event, fields) }
    public static func error(_ event: String, _ fields: KeyValuePairs<String, Any> = [:]) { emit(.error, event, fields) }

    private static func emit(_ level: Level, _ event: String, _ fields: KeyValuePairs<String, Any>) {
        guard level.rawValue >= minimum.load(ordering: .relaxed) else { return }
        let millis = Clock.unixNanos() / 1_000_000
        var line = "ts=\(millis / 1000).\(String(millis % 1000 + 1000).dropFirst()) level=\(level) event=\(event)"
        for (key, value) in fields { line += " \(key)=\(quote(String(describing: value)))" }
        line += "\n"
        line.withUTF8 { _ = Glibc.write(2, $0.baseAddress, $0.count) }
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
