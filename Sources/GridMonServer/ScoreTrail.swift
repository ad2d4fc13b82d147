/// A node's recent scores for the fleet view's sparkline: the highest score of each 5-second
/// bucket over the last 5 minutes, one byte each (score × 100, capped at 2.55; 0 = no sample
/// in that bucket). 60 bytes per node, so a million remembered nodes hold 60 MB of trails, not
/// the 480 MB of a Double per sample. Pure value; updated under its node's lock.
public struct ScoreTrail: Sendable, Equatable {
    public static let bucketNs: Int64 = 5_000_000_000
    public static let buckets = 60
    /// Oldest first; the last is the bucket of `lastBucket`.
    public private(set) var values: [UInt8] = []
    private var lastBucket: Int64 = 0

    public init() {}

    /// Records `score` seen at `nowNs` (the server's clock).
    public mutating func add(_ score: Double, nowNs: Int64) {
        let bucket = nowNs / Self.bucketNs
        let value = score.isFinite ? UInt8(min(255, max(1, (score * 100).rounded()))) : 255
        if values.isEmpty || bucket > lastBucket {
            let gap = values.isEmpty ? 0 : Int(min(Int64(Self.buckets), bucket - lastBucket - 1))
            values += repeatElement(0, count: gap)
            values.append(value)
            if values.count > Self.buckets { values.removeFirst(values.count - Self.buckets) }
            lastBucket = bucket
        } else if bucket == lastBucket {
            values[values.count - 1] = max(values[values.count - 1], value)
        }
        // (A bucket older than the last one — the clock stepped back — is ignored.)
    }

    /// The trail as of `nowNs`, one value per bucket ending at `nowNs`'s (scores; nil = no
    /// sample), at most `buckets` long.
    public func scores(nowNs: Int64) -> [Double?] {
        guard !values.isEmpty else { return [] }
        let idle = Int(min(Int64(Self.buckets), max(0, nowNs / Self.bucketNs - lastBucket)))
        let all = values.map { $0 == 0 ? nil : Double($0) / 100 } + Array(repeating: nil, count: idle)
        return Array(all.suffix(Self.buckets))
    }
}
