/// Maps agent tokens to tenants, comparing tokens in constant time.
///
/// The tokens file has one `TOKEN TENANT` pair per line; `#` starts a comment. With
/// `insecure` set, every Hello is accepted into tenant "default" (for demos only).
/// Threading: immutable after creation; swap in a new one to reload (SIGHUP).
public final class Authenticator: Sendable {
    public struct ParseError: Error, CustomStringConvertible {
        public let line: Int
        public let reason: String
        public var description: String { "tokens file line \(line): \(reason)" }
    }

    /// Longest token accepted. A 4 MiB token compared against 1,000 tokens cost 2.6 CPU-s per
    /// Hello on a reactor thread (issue #10, defect 7); longer ones are refused unread.
    public static let maxTokenBytes = 1024

    /// Tokens by a keyed 64-bit hash (Swift's `Hasher`, SipHash with a per-process random
    /// seed, so a peer can neither predict nor aim at a bucket); each bucket is compared in
    /// constant time. A Hello costs one hash and, nearly always, one comparison.
    private let buckets: [Int: [([UInt8], String)]]
    public let tokenCount: Int
    public let insecure: Bool

    public init(tokens: [String: String], insecure: Bool = false) {
        var buckets: [Int: [([UInt8], String)]] = [:]
        for (token, tenant) in tokens where token.utf8.count <= Self.maxTokenBytes {
            let bytes = Array(token.utf8)
            buckets[Self.digest(bytes), default: []].append((bytes, tenant))
        }
        self.buckets = buckets
        self.tokenCount = tokens.count
        self.insecure = insecure
    }

    private static func digest(_ bytes: [UInt8]) -> Int {
        var hasher = Hasher()
        bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
        return hasher.finalize()
    }

    /// Parses the contents of a tokens file.
    public convenience init(parsing text: String) throws(ParseError) {
        var tokens: [String: String] = [:]
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
            if words.isEmpty { continue }
            guard words.count == 2 else { throw ParseError(line: index + 1, reason: "expected `TOKEN TENANT`") }
            guard tokens[String(words[0])] == nil else { throw ParseError(line: index + 1, reason: "duplicate token") }
            guard words[0].utf8.count <= Authenticator.maxTokenBytes else {
                throw ParseError(line: index + 1, reason: "token longer than \(Authenticator.maxTokenBytes) bytes")
            }
            tokens[String(words[0])] = String(words[1])
        }
        self.init(tokens: tokens)
    }

    /// The tenant of `token`, or nil. Within a hash bucket every token is compared in full, so
    /// the time taken does not tell an attacker how much of a guess was right.
    public func tenant(for token: String) -> String? {
        if insecure { return "default" }
        guard token.utf8.count <= Self.maxTokenBytes else { return nil }
        let candidate = Array(token.utf8)
        var found: String?
        for (known, tenant) in buckets[Self.digest(candidate)] ?? [] where Self.constantTimeEqual(known, candidate) {
            found = tenant
        }
        return found
    }

    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(truncatingIfNeeded: a.count ^ b.count)
        for i in 0..<max(a.count, b.count) {
            difference |= (i < a.count ? a[i] : 0) ^ (i < b.count ? b[i] : 0)
        }
        return difference == 0
    }
}
