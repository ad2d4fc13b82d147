import GridMonWire

/// Which of a sample's extra gauges line protocol can carry, worked out once for a list of
/// names and reused while the names stay the same.
///
/// Why: deciding it per gauge takes a set lookup (a reserved name), a scan of the name's bytes
/// (characters line protocol cannot carry) and a set insert (a repeated name): two hashes
/// and a scan per gauge per sample, most of packing's cost with 10,000 agent-shaped nodes at
/// one sample per second (issue #17; perf, `Tools/bench-server --idle-extra-gauges 42`). An
/// agent sends the same names in the same order every time, and decoded through one
/// `GaugeNameCache` they are the same strings, so seeing that a sample's names are the last
/// sample's is a pointer comparison per name.
///
/// The verdicts are those of `SystemMetrics.appendLineTail`, in its order: a reserved name is
/// left out silently; an unwritable name, or a name an earlier gauge of the sample already
/// has, is left out as a bad name. (A non-finite value depends on the sample, not the names:
/// the caller checks it.) Pure value type; memory: the names (shared strings) and a byte per
/// gauge, at most `maxKeptNames` names of `maxKeptNameBytes` between samples (`trim`).
public struct ExtraGaugePlan: Sendable {
    public enum Verdict: UInt8, Sendable {
        case keep, reserved, badName
    }

    /// Most names, and bytes of names, kept from one sample to the next: an agent with every
    /// input and a full textfile directory sends about 1,500 gauges of ~30 bytes. A longer list
    /// (a peer's choice, bounded only by the frame size) is judged afresh for every sample
    /// rather than held for the stream's life.
    public static let maxKeptNames = 2_048
    public static let maxKeptNameBytes = 128 << 10

    /// The names `verdicts` are for, in order.
    public private(set) var names: [String] = []
    /// Per gauge of `names`.
    public private(set) var verdicts: [Verdict] = []
    /// How many times the verdicts were worked out afresh (a new or changed list of names).
    public private(set) var judged = 0
    /// The UTF-8 bytes of `names`.
    private var nameBytes = 0

    public init() {}

    /// Makes `verdicts` those of `extras`' names: kept when the names are the last ones.
    public mutating func update(for extras: [Gauge]) {
        if extras.count == names.count {
            var same = true
            for i in extras.indices where extras[i].name != names[i] { same = false; break }
            if same { return }
        }
        judged += 1
        names.removeAll(keepingCapacity: true)
        verdicts.removeAll(keepingCapacity: true)
        nameBytes = 0
        // Few gauges (the usual case) are checked against the earlier ones in place; many (a
        // peer's choice) through a set, so the check stays linear.
        var seen: Set<String>? = extras.count > 16 ? Set(minimumCapacity: extras.count) : nil
        for (index, gauge) in extras.enumerated() {
            names.append(gauge.name)
            nameBytes += gauge.name.utf8.count
            if SystemMetrics.reserved.contains(gauge.name) { verdicts.append(.reserved); continue }
            guard MetricNames.isWritableFieldKey(gauge.name) else { verdicts.append(.badName); continue }
            let repeated = seen != nil ? !seen!.insert(gauge.name).inserted : extras[..<index].contains { $0.name == gauge.name }
            verdicts.append(repeated ? .badName : .keep)
        }
    }

    /// Forgets a list of names longer than `maxKeptNames` or `maxKeptNameBytes`, so the next
    /// sample is judged afresh; the caller keeping the plan calls it once it has used it.
    public mutating func trim() {
        guard names.count > Self.maxKeptNames || nameBytes > Self.maxKeptNameBytes else { return }
        self = ExtraGaugePlan(judged: judged)
    }

    private init(judged: Int) { self.judged = judged }
}
