import GridMonDetect
import GridMonWire

/// The buffers a reactor thread's sessions share while they store one stream's samples: where
/// the frames of one read are joined, and the judgement they are scored into.
///
/// Why shared: when every session kept its own, 1,000 connections pipelining 64-sample frames
/// meant 1,000 joined buffers, each either given back after a large read and faulted in again
/// on the next (page faults were ~10 % of the server's CPU in perf) or kept at ~400 KB per
/// connection; one per thread stays warm in cache. Issue #17: 1,000 streams of 64-sample frames
/// under `--scorer static`, 14.2 → 17.0 M samples per server CPU-second (`Tools/bench-server
/// --peer`; README, "gRPC peer").
///
/// Ownership and threading: made by a `Worker` and handed to every session it serves, so
/// confined to that worker's reactor thread. A session uses it only inside one store (in
/// `flushAcks()` or when a stream closes) and keeps nothing that a later store depends on: the
/// judgement is reset by every scorer, the joined samples by `join`.
public final class StoreScratch {
    /// One stream's frames of one read, joined (see `join`).
    private(set) var joined: [Sample] = []
    /// What the scorer made of them; every scorer empties it before it writes.
    var judgement = Judgement()

    /// Most samples the buffers keep room for between stores: ~6 MB per thread with the
    /// judgement (88-byte samples, 9 bytes of score and flag). A read brings at most 4 × 64 KiB
    /// of frames (`ServerConnection`), so only samples far smaller than an agent's exceed it,
    /// and their room is given back after that store.
    static let maxKept = 65_536

    public init() {}

    /// `parts` in order in `joined`, and `joined` returned. Room for all of them is reserved
    /// first: grown by appending, a buffer doubled and copied several times per read.
    func join(_ parts: [[Sample]]) -> [Sample] {
        joined.removeAll(keepingCapacity: joined.capacity <= Self.maxKept)
        var total = 0
        for part in parts { total += part.count }
        joined.reserveCapacity(total)
        for part in parts { joined.append(contentsOf: part) }
        return joined
    }

    /// Gives back room beyond `maxKept` taken by an unusually large store.
    func trim() {
        if joined.capacity > Self.maxKept { joined = [] }
        if judgement.scores.capacity > Self.maxKept || judgement.flagged.capacity > Self.maxKept {
            judgement = Judgement()
        }
    }
}
