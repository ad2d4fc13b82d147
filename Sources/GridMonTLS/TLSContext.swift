import COpenSSL
import Glibc
import GridMonPosix

/// A TLS failure, with OpenSSL's own words (its error queue) after what GridMon was doing.
public struct TLSError: Error, CustomStringConvertible, Sendable {
    public let description: String

    public init(_ description: String) { self.description = description }

    /// `what`, then every error OpenSSL queued on this thread (the queue is emptied).
    static func fromQueue(_ what: String) -> TLSError {
        var reasons: [String] = []
        while true {
            let code = ERR_get_error()
            if code == 0 { break }
            var buffer = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &buffer, buffer.count)
            reasons.append(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        return TLSError(reasons.isEmpty ? what : "\(what): \(reasons.joined(separator: "; "))")
    }
}

/// The lowest TLS version a side accepts.
public enum TLSVersion: String, Sendable, CaseIterable {
    case tls12 = "1.2"
    case tls13 = "1.3"

    var openSSL: Int32 { self == .tls12 ? gridmon_tls1_2_version() : gridmon_tls1_3_version() }
}

/// The server side: its certificate chain and key, and optionally the CA that client
/// certificates must chain to (mutual TLS).
public struct TLSServerConfig: Sendable {
    public var certificatePath: String
    public var keyPath: String
    public var clientCAPath: String?
    public var minVersion: TLSVersion = .tls12

    public init(certificatePath: String, keyPath: String, clientCAPath: String? = nil, minVersion: TLSVersion = .tls12) {
        self.certificatePath = certificatePath
        self.keyPath = keyPath
        self.clientCAPath = clientCAPath
        self.minVersion = minVersion
    }
}

/// The client side: what it trusts (a CA file, else the system store) and whom it expects.
public struct TLSClientConfig: Sendable {
    /// PEM file of the CA certificates to trust; nil = the system's store.
    public var caPath: String?
    /// Certificate and key for mutual TLS.
    public var certificatePath: String?
    public var keyPath: String?
    /// Verification off: anyone can impersonate the server. Logged loudly by the caller.
    public var insecureSkipVerify = false
    public var minVersion: TLSVersion = .tls12

    public init(caPath: String? = nil, certificatePath: String? = nil, keyPath: String? = nil, insecureSkipVerify: Bool = false,
                minVersion: TLSVersion = .tls12) {
        self.caPath = caPath
        self.certificatePath = certificatePath
        self.keyPath = keyPath
        self.insecureSkipVerify = insecureSkipVerify
        self.minVersion = minVersion
    }
}

/// An OpenSSL `SSL_CTX`: certificates, trust and versions, shared by every session of one
/// side. Built once at start (and again on a reload); sessions keep their context alive.
///
/// Threading: OpenSSL 3 contexts are safe to share between threads once built; nothing here
/// changes after `init`. Errors: `TLSError` naming the file and OpenSSL's reason.
public final class TLSContext: @unchecked Sendable {
    let context: OpaquePointer
    public let isServer: Bool

    /// A server context from PEM files: the certificate chain, its key (checked to match),
    /// and with `clientCAPath` the CA client certificates must chain to (then required).
    public init(server config: TLSServerConfig) throws(TLSError) {
        guard let context = SSL_CTX_new(TLS_server_method()) else { throw TLSError.fromQueue("SSL_CTX_new") }
        self.context = context
        isServer = true
        try common(config.minVersion)
        guard SSL_CTX_use_certificate_chain_file(context, config.certificatePath) == 1 else {
            throw TLSError.fromQueue("certificate \(config.certificatePath)")
        }
        guard SSL_CTX_use_PrivateKey_file(context, config.keyPath, SSL_FILETYPE_PEM) == 1 else {
            throw TLSError.fromQueue("key \(config.keyPath)")
        }
        guard SSL_CTX_check_private_key(context) == 1 else {
            throw TLSError.fromQueue("key \(config.keyPath) does not match certificate \(config.certificatePath)")
        }
        if let ca = config.clientCAPath {
            guard SSL_CTX_load_verify_locations(context, ca, nil) == 1 else { throw TLSError.fromQueue("client CA \(ca)") }
            SSL_CTX_set_verify(context, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nil)
        }
        // Buffers of idle sessions go back to the allocator: 10,000 agents held 549 MB with
        // them kept (148 MB in plain TCP), each mostly idle between samples.
        _ = gridmon_ssl_ctx_set_mode(context, Int(SSL_MODE_RELEASE_BUFFERS))
        // Resumption (RFC 8446 §2.2): TLS 1.3 tickets, and the server-side cache for 1.2.
        _ = gridmon_ssl_ctx_set_session_cache_mode(context, Int(SSL_SESS_CACHE_SERVER))
    }

    /// A client context: trust from `caPath` or the system store, verification on unless
    /// `insecureSkipVerify`, an optional certificate for mutual TLS.
    public init(client config: TLSClientConfig) throws(TLSError) {
        guard let context = SSL_CTX_new(TLS_client_method()) else { throw TLSError.fromQueue("SSL_CTX_new") }
        self.context = context
        isServer = false
        try common(config.minVersion)
        if let ca = config.caPath {
            guard SSL_CTX_load_verify_locations(context, ca, nil) == 1 else { throw TLSError.fromQueue("CA \(ca)") }
        } else {
            guard SSL_CTX_set_default_verify_paths(context) == 1 else { throw TLSError.fromQueue("the system's CA store") }
        }
        SSL_CTX_set_verify(context, config.insecureSkipVerify ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, nil)
        if let certificate = config.certificatePath {
            guard SSL_CTX_use_certificate_chain_file(context, certificate) == 1 else { throw TLSError.fromQueue("certificate \(certificate)") }
            let key = config.keyPath ?? certificate
            guard SSL_CTX_use_PrivateKey_file(context, key, SSL_FILETYPE_PEM) == 1, SSL_CTX_check_private_key(context) == 1 else {
                throw TLSError.fromQueue("key \(key)")
            }
        }
    }

    private func common(_ minVersion: TLSVersion) throws(TLSError) {
        // OpenSSL's socket BIO writes with write(2), not send(MSG_NOSIGNAL): a peer that hangs
        // up mid-handshake raised SIGPIPE and killed the server (openssl s_time did it at once).
        signal(SIGPIPE, SIG_IGN)
        guard gridmon_ssl_ctx_set_min_version(context, minVersion.openSSL) == 1 else { throw TLSError.fromQueue("min version") }
        // Writes may complete in parts and resume from a buffer that moved (Swift arrays do).
        _ = gridmon_ssl_ctx_set_mode(context, gridmon_ssl_mode_partial_write())
        // Read whole socket buffers, not a record header then its body: half the read(2) calls.
        _ = gridmon_ssl_ctx_set_read_ahead(context, 1)
    }

    deinit { SSL_CTX_free(context) }
}
