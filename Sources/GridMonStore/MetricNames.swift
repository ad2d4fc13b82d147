import GridMonWire

/// What a node id, a label and a gauge name may hold so that every sample accepted is one
/// InfluxDB 1.x writes as sent (issue #10, defect 9). Pure.
///
/// Line protocol has no escape for a backslash: `\\` collapses to one, and a trailing `\`
/// escapes the separator after it (influxd 1.6.7 refuses `host=node\` and misreads `a\,b`),
/// so names hold no backslash at all. Control characters are refused (a newline ends a line;
/// a node id with one was stored with no host tag). A label key may not be `time` (InfluxDB
/// refuses it), `host` or `tenant` (GridMon's own tags), or start with `_` (InfluxDB's own
/// columns); keys are unique. Sizes are bounded so a peer cannot make the server hold much per
/// node: at most `maxLabels` labels, keys of `maxKeyBytes`, values of `maxValueBytes`.
public enum MetricNames {
    public static let maxNodeIDBytes = 256
    public static let maxLabels = 32
    public static let maxKeyBytes = 128
    public static let maxValueBytes = 256
    /// Longest extra gauge name kept.
    public static let maxFieldKeyBytes = 256
    static let reservedLabelKeys: Set<String> = ["time", "host", "tenant"]

    /// Why `id` cannot be a node id, or nil when it can.
    public static func nodeIDProblem(_ id: String) -> String? {
        guard !id.isEmpty, id.utf8.count <= maxNodeIDBytes else { return "node_id must be 1 to \(maxNodeIDBytes) bytes" }
        return characterProblem(id).map { "node_id \($0)" }
    }

    /// Why `labels` cannot be stored, or nil when they can.
    public static func labelsProblem(_ labels: [Label]) -> String? {
        guard labels.count <= maxLabels else { return "at most \(maxLabels) labels (got \(labels.count))" }
        var keys = Set<String>()
        for label in labels {
            let shownKey = String(label.key.prefix(40))
            guard !label.key.isEmpty, label.key.utf8.count <= maxKeyBytes else {
                return "label key '\(shownKey)' must be 1 to \(maxKeyBytes) bytes"
            }
            if let problem = characterProblem(label.key) { return "label key '\(shownKey)' \(problem)" }
            guard !reservedLabelKeys.contains(label.key), !label.key.hasPrefix("_") else {
                return "label key '\(shownKey)' is reserved (time, host, tenant and keys starting with _)"
            }
            guard keys.insert(label.key).inserted else { return "label key '\(shownKey)' appears twice" }
            guard !label.value.isEmpty, label.value.utf8.count <= maxValueBytes else {
                return "label '\(shownKey)' value must be 1 to \(maxValueBytes) bytes"
            }
            if let problem = characterProblem(label.value) { return "label '\(shownKey)' value \(problem)" }
        }
        return nil
    }

    /// Whether an extra gauge named `name` can be written as a field.
    public static func isWritableFieldKey(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= maxFieldKeyBytes && name != "time" && characterProblem(name) == nil
    }

    private static func characterProblem(_ text: String) -> String? {
        for byte in text.utf8 {
            if byte < 0x20 || byte == 0x7F { return "holds a control character" }
            if byte == UInt8(ascii: "\\") { return "holds a backslash (line protocol cannot carry it)" }
        }
        return nil
    }
}
