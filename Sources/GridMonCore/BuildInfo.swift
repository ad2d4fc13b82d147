/// What this build is: the version every binary prints for `--version` and the server exports
/// as `gridmon_build_info`. Pure.
///
/// `version` is bumped with each release (Tools/release refuses to pack a tree whose git tag,
/// if any, differs from it). The wire and outbox format versions are the compatibility
/// promises an operator upgrading a mixed fleet needs (README, "Upgrading").
public enum BuildInfo {
    public static let version = "0.16.0"
    /// Frame protocol version agents and servers speak (Proto/gridmon.proto, Hello.version).
    public static let wireVersion = 1
    /// Outbox record format version written (GridMonStore's OutboxBatch; versions 1 and 2 are read).
    public static let outboxVersion = 3

    /// The Swift compiler that built this binary, e.g. "6.3".
    public static var swiftVersion: String {
        #if compiler(>=6.4)
        return "6.4+"
        #elseif compiler(>=6.3)
        return "6.3"
        #elseif compiler(>=6.2)
        return "6.2"
        #else
        return "6.0"
        #endif
    }

    /// `--version` text: `gridmon-agent 0.16.0 (swift 6.3, wire 1, outbox 3)`.
    public static func versionLine(_ program: String) -> String {
        "\(program) \(version) (swift \(swiftVersion), wire \(wireVersion), outbox \(outboxVersion))"
    }
}
