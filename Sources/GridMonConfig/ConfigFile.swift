import TOMLKit

/// A TOML configuration file flattened to option keys (issue #15, item 3).
///
/// TOML (1.0, parsed by TOMLKit/toml++) is what Telegraf users know. A `[table]` prefixes its
/// keys with its name and `_`, so `[influx]\nurl = "…"` sets `influx_url`; `-` in a key reads
/// as `_`. Scalars become their text (`true`, `42`, `0.5`, strings as written) and go through
/// the same parsers as the `GRIDMON_…` variables, so a file and a variable are checked alike;
/// arrays of scalars serve the repeatable options. Dates, times and arrays of tables are not
/// settings: they are errors naming the key.
///
/// Errors: `ConfigFile.Problem`, with the line and column of a syntax error.
public struct ConfigFile: Sendable {
    public struct Problem: Error, CustomStringConvertible {
        public var description: String
    }

    public let path: String
    /// Option key → its values (one for a scalar).
    public let values: [String: [String]]

    /// The file key of option `name`: `max-connections` → `max_connections`.
    public static func key(_ name: String) -> String { String(name.map { $0 == "-" ? "_" : $0 }) }

    public init(path: String, text: String) throws(Problem) {
        self.path = path
        let table: TOMLTable
        do { table = try TOMLTable(string: text) } catch let error as TOMLParseError {
            throw Problem(description: "line \(error.source.begin.line), column \(error.source.begin.column): \(error.description)")
        } catch {
            throw Problem(description: "\(error)")
        }
        var values: [String: [String]] = [:]
        try Self.flatten(table, prefix: "", into: &values)
        self.values = values
    }

    private static func flatten(_ table: TOMLTable, prefix: String, into values: inout [String: [String]]) throws(Problem) {
        for name in table.keys {
            guard let value = table[name] else { continue }
            let key = prefix + Self.key(name)
            if let inner = value.table {
                try flatten(inner, prefix: key + "_", into: &values)
                continue
            }
            guard values[key] == nil else { throw Problem(description: "key '\(key)' is set twice (once inside a table)") }
            if let array = value.array {
                var items: [String] = []
                for item in array {
                    guard let text = scalar(item) else { throw Problem(description: "\(key): an array may hold strings, numbers or booleans only") }
                    items.append(text)
                }
                values[key] = items
            } else if let text = scalar(value) {
                values[key] = [text]
            } else {
                throw Problem(description: "\(key): expected a string, number, boolean or array, got a \(value.type)")
            }
        }
    }

    private static func scalar(_ value: TOMLValueConvertible) -> String? {
        if let string = value.string { return string }
        if let bool = value.bool { return bool ? "true" : "false" }
        if let int = value.int { return String(int) }
        if let double = value.double { return String(double) }
        return nil
    }
}
