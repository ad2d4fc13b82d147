/// Parsers for the values of command-line flags and their `GRIDMON_…` environment twins, so
/// that flag and variable are checked the same way and a bad value is an error naming its key
/// (a bad `GRIDMON_INTERVAL=5s` was once ignored silently: issue #12). Pure.
public enum SettingValues {
    /// A bad value: `key` names the flag and its variable, e.g. `--interval / GRIDMON_INTERVAL`.
    public struct Problem: Error, CustomStringConvertible, Equatable {
        public var key: String
        public var message: String
        public var description: String { "\(key): \(message)" }
        public init(key: String, message: String) {
            self.key = key
            self.message = message
        }
    }

    /// Seconds, as a plain number (`1.5`) or with a unit: `500ms`, `10s`, `5m`, `24h`.
    public static func seconds(_ text: String) -> Double? {
        let units: [(String, Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86_400)]
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            let number = text.dropLast(suffix.count)
            // "5ms" must not read as "5m" + "s": only a number may precede the unit.
            if let value = Double(number), value.isFinite { return value * scale }
        }
        guard let value = Double(text), value.isFinite else { return nil }
        return value
    }

    /// Bytes, as a number or with a unit: `1048576`, `512KiB`, `64MiB`, `2GiB` (also KB/MB/GB
    /// as powers of 1000).
    public static func bytes(_ text: String) -> Int? {
        let units: [(String, Int)] = [("KiB", 1 << 10), ("MiB", 1 << 20), ("GiB", 1 << 30), ("KB", 1000), ("MB", 1_000_000),
                                      ("GB", 1_000_000_000), ("B", 1)]
        for (suffix, scale) in units where text.hasSuffix(suffix) {
            guard let value = Int(text.dropLast(suffix.count)), value >= 0 else { return nil }
            let (product, overflow) = value.multipliedReportingOverflow(by: scale)
            return overflow ? nil : product
        }
        return Int(text).flatMap { $0 >= 0 ? $0 : nil }
    }

    /// `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`.
    public static func bool(_ text: String) -> Bool? {
        switch text.lowercased() {
        case "1", "true", "yes", "on": true
        case "0", "false", "no", "off": false
        default: nil
        }
    }

    /// A comma-separated list with blanks trimmed and empty items dropped.
    public static func list(_ text: String) -> [String] {
        text.split(separator: ",").map { String($0).trimmingSpaces() }.filter { !$0.isEmpty }
    }
}
