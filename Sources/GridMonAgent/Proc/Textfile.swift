/// The textfile format of node_exporter's textfile collector, the subset that names a gauge:
/// Prometheus text exposition lines `name value` or `name{label="v",…} value [timestamp]`,
/// with `#` comments. Pure: text in, gauges and problems out.
///
/// Bounded because an application, not the operator, writes these files: names longer than
/// `maxNameBytes` and values that are not finite numbers (InfluxDB cannot store NaN or ±Inf)
/// are problems, and at most `maxGauges` gauges are read from one text.
public enum Textfile {
    public static let maxNameBytes = 256
    public static let maxGauges = 1000

    /// A line that was skipped and why (1-based line number).
    public struct Problem: Equatable, Sendable {
        public var line: Int
        public var message: String
    }

    public static func parse(_ text: Substring) -> (gauges: [(name: String, value: Double)], problems: [Problem]) {
        var gauges: [(name: String, value: Double)] = []
        var problems: [Problem] = []
        var number = 0
        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false) {
            number += 1
            let line = rawLine.drop { $0 == " " || $0 == "\t" }
            if line.isEmpty || line.first == "#" { continue }
            guard gauges.count < maxGauges else {
                problems.append(Problem(line: number, message: "more than \(maxGauges) gauges in one file; the rest are skipped"))
                break
            }
            switch parseLine(line) {
            case .success(let gauge): gauges.append(gauge)
            case .failure(let problem): problems.append(Problem(line: number, message: problem.message))
            }
        }
        return (gauges, problems)
    }

    struct LineError: Error { var message: String }

    static func parseLine(_ line: Substring) -> Result<(name: String, value: Double), LineError> {
        // The name ends at '{' (labels follow, which may hold spaces inside quotes) or a blank.
        var end = line.startIndex
        while end < line.endIndex, line[end] != "{", line[end] != " ", line[end] != "\t" { end = line.index(after: end) }
        let metric = line[..<end]
        guard isMetricName(metric) else {
            return .failure(LineError(message: "'\(metric.prefix(64))' is not a metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)"))
        }
        if end < line.endIndex, line[end] == "{" {
            guard let close = closingBrace(line, from: end) else { return .failure(LineError(message: "unterminated label set")) }
            end = line.index(after: close)
        }
        let name = String(line[..<end])
        guard name.utf8.count <= maxNameBytes else { return .failure(LineError(message: "name longer than \(maxNameBytes) bytes")) }
        // InfluxDB's line protocol cannot carry a backslash in a field key (see MetricNames).
        guard !name.utf8.contains(UInt8(ascii: "\\")) else { return .failure(LineError(message: "name holds a backslash")) }
        let rest = line[end...].split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
        guard let valueText = rest.first, rest.count <= 2 else {
            return .failure(LineError(message: "expected 'name value [timestamp]'"))
        }
        guard let value = Double(valueText), value.isFinite else {
            return .failure(LineError(message: "value '\(valueText.prefix(32))' is not a finite number"))
        }
        return .success((name, value))
    }

    static func isMetricName(_ text: Substring) -> Bool {
        guard let first = text.utf8.first, isNameStart(first) else { return false }
        return text.utf8.allSatisfy { isNameStart($0) || ($0 >= 0x30 && $0 <= 0x39) }
    }

    private static func isNameStart(_ b: UInt8) -> Bool {
        (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == UInt8(ascii: "_") || b == UInt8(ascii: ":")
    }

    /// The `}` closing the label set at `open`, skipping quoted values (with `\"` escapes).
    private static func closingBrace(_ line: Substring, from open: Substring.Index) -> Substring.Index? {
        var quoted = false
        var escaped = false
        var i = line.index(after: open)
        while i < line.endIndex {
            let c = line[i]
            if escaped { escaped = false } else if c == "\\" { escaped = quoted } else if c == "\"" { quoted.toggle() } else if c == "}" && !quoted { return i }
            i = line.index(after: i)
        }
        return nil
    }
}
