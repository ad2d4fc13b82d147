/// When a node's flagged samples add up to an incident: opened after `openAfter` of the last
/// `window` samples were flagged, closed after `closeAfter` samples in a row were not.
///
/// Why hysteresis: a single flagged sample is the detector's false-alarm floor (about 1 in
/// 100–1000 healthy samples sit past a 99th-percentile threshold); trouble is flags that
/// persist. Requiring k of n opens on a real incident within a few samples and all but never on
/// scattered false flags; requiring m quiet samples in a row keeps one incident from flapping
/// into many. Defaults (issue #11): 4 of 6 to open, 30 quiet to close — an incident opens 4–6 s
/// into trouble at the agent's 1 s interval and closes half a minute after it ends.
public struct IncidentRules: Sendable, Equatable {
    public var openAfter = 4
    public var window = 6
    public var closeAfter = 30
    public init() {}

    /// Nil when the rules are usable, else what is wrong.
    public var problem: String? {
        guard (1...64).contains(window) else { return "incident window must be 1...64 samples" }
        guard (1...window).contains(openAfter) else { return "incident open-after must be 1...window" }
        guard (1...1_000_000).contains(closeAfter) else { return "incident close-after must be 1...1000000 samples" }
        return nil
    }
}

/// One node's incident state machine. Pure; one per node, fed each sample's verdict in order.
public struct IncidentTracker: Sendable {
    public enum Transition: Sendable, Equatable {
        case none
        /// The incident opened at this sample; its first flagged sample is `firstFlagged`
        /// samples back (0 = this one).
        case opened(firstFlaggedBack: Int)
        /// The incident closed at this sample (its last flagged sample was `closeAfter` back).
        case closed
    }

    public let rules: IncidentRules
    /// The last `window` verdicts, newest in bit 0.
    private var recent: UInt64 = 0
    private var quiet = 0
    public private(set) var isOpen = false
    /// Flagged samples among the last `window`.
    public var recentFlags: Int { recent.nonzeroBitCount }

    public init(rules: IncidentRules) {
        self.rules = rules
    }

    /// Takes the next sample's verdict.
    public mutating func next(flagged: Bool) -> Transition {
        let mask: UInt64 = rules.window == 64 ? .max : (1 << UInt64(rules.window)) - 1
        recent = ((recent << 1) | (flagged ? 1 : 0)) & mask
        if isOpen {
            quiet = flagged ? 0 : quiet + 1
            guard quiet >= rules.closeAfter else { return .none }
            isOpen = false
            quiet = 0
            recent = 0
            return .closed
        }
        guard flagged, recent.nonzeroBitCount >= rules.openAfter else { return .none }
        isOpen = true
        quiet = 0
        // The oldest flag in the window is where the trouble began.
        return .opened(firstFlaggedBack: 63 - recent.leadingZeroBitCount)
    }

    /// Forgets an open incident without a transition (the node's detector was reset).
    public mutating func reset() {
        recent = 0
        quiet = 0
        isOpen = false
    }
}
