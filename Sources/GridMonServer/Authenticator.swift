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

    private let tokens: [([UInt8], String)]
    public let insecure: Bool

    public init(tokens: [String: String], insecure: Bool = false) {
        self.tokens = tokens.map { (Array($0.key.utf8), $0.value) }
        self.insecure = insecure
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
            tokens[String(words[0])] = String(words[1])
        }
        self.init(tokens: tokens)
    }

    public var tokenCount: Int { tokens.count }

    /// The tenant of `token`, or nil. Every known token is compared in full, so the time
    /// taken does not tell an attacker how much of a guess was right.
    public func tenant(for token: String) -> String? {
        if insecure { return "default" }
        let candidate = Array(token.utf8)
        var found: String?
        for (known, tenant) in tokens where Self.constantTimeEqual(known, candidate) {
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
