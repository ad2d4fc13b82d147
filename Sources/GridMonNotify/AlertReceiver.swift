import GridMonCore
import GridMonPosix
import Synchronization

/// Where notifications go: an Alertmanager (all tenants; it routes by the `tenant` label), a
/// JSON webhook, or a Slack-compatible webhook, the last two for one tenant or all.
public struct ReceiverConfig: Sendable, Equatable {
    public enum Kind: String, Sendable {
        case alertmanager, webhook, slack
    }

    public var kind: Kind
    public var url: String
    /// Only this tenant's alerts (nil: every tenant's).
    public var tenant: String?

    public init(kind: Kind, url: String, tenant: String? = nil) {
        self.kind = kind
        self.url = url
        self.tenant = tenant
    }

    /// `[TENANT=]URL`, as the flags take it; nil with the reason when it is not one. A tenant
    /// prefix is whatever comes before `=` when that is before `://` (a URL scheme has no `=`).
    public static func parse(_ text: String, kind: Kind) -> Result<ReceiverConfig, ReceiverError> {
        var url = Substring(text)
        var tenant: String?
        if let equals = text.firstIndex(of: "="), let scheme = text.range(of: "://"), equals < scheme.lowerBound {
            tenant = String(text[..<equals])
            url = text[text.index(after: equals)...]
            if tenant!.isEmpty { return .failure(ReceiverError("\(text): empty tenant before '='")) }
        }
        guard url.hasPrefix("http://") || url.hasPrefix("https://") else {
            return .failure(ReceiverError("\(text): the URL must start with http:// or https://"))
        }
        if kind == .alertmanager && tenant != nil {
            return .failure(ReceiverError("\(text): an Alertmanager takes every tenant (route by the tenant label)"))
        }
        return .success(ReceiverConfig(kind: kind, url: String(url), tenant: tenant))
    }

    /// The cursor id: stable across restarts and flag order, and it does not put the URL (a
    /// Slack webhook URL is a secret) in the data directory.
    var id: String { "\(kind.rawValue)-\(String(FNV1a.hash("\(url) \(tenant ?? "*")"), radix: 16))" }

    /// The POST URL: Alertmanager's v2 alerts endpoint under the base URL.
    var postURL: String {
        guard kind == .alertmanager else { return url }
        return (url.hasSuffix("/") ? String(url.dropLast()) : url) + "/api/v2/alerts"
    }

    /// Scheme and host only (what logs show; the path of a webhook URL may be a secret).
    public var safeName: String {
        guard let scheme = url.range(of: "://") else { return kind.rawValue }
        let rest = url[scheme.upperBound...]
        return kind.rawValue + " " + url[..<scheme.upperBound] + (rest.split(separator: "/").first.map(String.init) ?? "")
    }
}

public struct ReceiverError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Counters of one receiver, for /metrics.
final class ReceiverStats: Sendable {
    let sent = Atomic<UInt64>(0)
    let failures = Atomic<UInt64>(0)
    let rejected = Atomic<UInt64>(0)
    let resends = Atomic<UInt64>(0)
}
