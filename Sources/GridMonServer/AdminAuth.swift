import GridMonCore

/// Who may read the admin API (`/api/v1/*`), from `--admin-tokens-file` (issue #13): one
/// `TOKEN SCOPE` pair per line, SCOPE a tenant name (that tenant's nodes and incidents only)
/// or `*` (every tenant). `/metrics`, `/healthz` and `/readyz` stay open for scrapers and
/// probes. Pure: a request's `Authorization: Bearer` header in, a scope or a refusal out.
/// Tokens are compared as agent tokens are (`Authenticator`: keyed hash, constant time).
/// Threading: immutable; swapped whole on SIGHUP.
public struct AdminAuth: Sendable {
    /// What a request may read.
    public enum Scope: Equatable, Sendable {
        case all
        case tenant(String)
    }

    /// The scope token meaning every tenant.
    public static let everyTenant = "*"

    private let tokens: Authenticator?

    /// No tokens file: the API is open (the server warns when it listens beyond loopback).
    public static let open = AdminAuth(tokens: nil)

    /// - Parameter tokens: nil leaves the API open.
    public init(tokens: Authenticator?) { self.tokens = tokens }

    /// Parses an admin tokens file (the agent tokens file's format; SCOPE may be `*`).
    public init(parsing text: String) throws(Authenticator.ParseError) {
        self.init(tokens: try Authenticator(parsing: text))
    }

    public var isOpen: Bool { tokens == nil }
    public var tokenCount: Int { tokens?.tokenCount ?? 0 }

    /// The scope of `request`, or why not: 401 without a known bearer token.
    func scope(of request: HTTPRequestParser.Request) -> Result<Scope, Refusal> {
        guard let tokens else { return .success(.all) }
        guard let header = request.header("authorization"), header.count > 7,
              header.prefix(7).lowercased() == "bearer " else {
            return .failure(Refusal(status: 401, message: "the admin API needs Authorization: Bearer TOKEN (--admin-tokens-file)"))
        }
        let token = String(header.dropFirst(7)).trimmingSpaces()
        guard let scope = tokens.tenant(for: token) else { return .failure(Refusal(status: 401, message: "unknown admin token")) }
        return .success(scope == Self.everyTenant ? .all : .tenant(scope))
    }

    /// A refused request: its status and the line to answer.
    struct Refusal: Error {
        var status: Int
        var message: String
    }

    /// The tenant a request reads: its own for a tenant token (asking for another is 403), the
    /// one asked for (or all: nil) for an every-tenant token.
    static func tenant(asked: String?, scope: Scope) -> Result<String?, Refusal> {
        switch scope {
        case .all: return .success(asked)
        case .tenant(let own):
            guard asked == nil || asked == own else {
                return .failure(Refusal(status: 403, message: "this token reads tenant \(own) only"))
            }
            return .success(own)
        }
    }
}
