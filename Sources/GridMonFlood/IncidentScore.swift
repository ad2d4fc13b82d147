/// The server's incidents scored against the incidents the fleet simulator injected (issue #11,
/// item 4): per kind, how many injected incidents an incident of the server overlapped and how
/// long after the injection it opened; and the server's incidents that overlapped nothing
/// injected (false incidents), per node-hour of healthy samples. Pure.
public struct IncidentScore: Sendable {
    /// One incident as the server reported it, in the sample numbering (seq = time in seconds
    /// since the workload's epoch).
    public struct Reported: Sendable {
        public var node: String
        public var startSeq: UInt64
        public var openedSeq: UInt64
        public var endSeq: UInt64?
        public init(node: String, startSeq: UInt64, openedSeq: UInt64, endSeq: UInt64?) {
            self.node = node
            self.startSeq = startSeq
            self.openedSeq = openedSeq
            self.endSeq = endSeq
        }
    }

    /// Per kind: injected, detected, and the sum of (open − injection start) in samples.
    public var byKind: [String: (injected: Int, detected: Int, delaySum: UInt64)] = [:]
    public var reported = 0
    public var falseIncidents = 0
    /// Samples the nodes sent outside injected incidents, in hours at one sample per second.
    public var healthyNodeHours = 0.0

    /// - Parameters:
    ///   - samplesPerNode: each node's highest seq sent (seq 1...n).
    ///   - grace: samples after an injected incident's end during which an incident still counts
    ///     as caused by it (the node's rolling window still holds the trouble).
    public init(reported: [Reported], fleet: FleetWorkload, samplesPerNode: [String: UInt64], grace: UInt64 = 30) {
        self.reported = reported.count
        var byNode: [String: [Reported]] = [:]
        for r in reported { byNode[r.node, default: []].append(r) }
        var explained = Set<Int>()  // indices into `reported` that overlap an injection
        var index: [String: [Int]] = [:]
        for (i, r) in reported.enumerated() { index[r.node, default: []].append(i) }
        var healthy: UInt64 = 0
        for (node, last) in samplesPerNode {
            var seq: UInt64 = 1
            while seq <= last {
                guard let (kind, start) = fleet.incident(node: node, seq: seq) else {
                    healthy += 1
                    seq += 1
                    continue
                }
                let end = start + kind.duration - 1
                var entry = byKind[kind.rawValue] ?? (0, 0, 0)
                entry.injected += 1
                var firstOpen: UInt64?
                for i in index[node] ?? [] {
                    let r = reported[i]
                    let rEnd = r.endSeq ?? UInt64.max
                    if r.startSeq <= end + grace && rEnd >= start {
                        explained.insert(i)
                        firstOpen = min(firstOpen ?? .max, r.openedSeq)
                    }
                }
                if let firstOpen {
                    entry.detected += 1
                    entry.delaySum += firstOpen > start ? firstOpen - start : 0
                }
                byKind[kind.rawValue] = entry
                seq = end + 1
            }
        }
        falseIncidents = reported.count - explained.count
        healthyNodeHours = Double(healthy) / 3600
    }

    /// False incidents per 100 node-hours of healthy samples.
    public var falsePer100NodeHours: Double { healthyNodeHours > 0 ? Double(falseIncidents) / healthyNodeHours * 100 : 0 }
}
