import COpenSSL
import Glibc
import GridMonPosix

/// One TLS session on a non-blocking socket, driven by the caller's reactor: every call
/// returns at once, saying what the socket must become (readable, writable) before the
/// session can go on — OpenSSL's `SSL_ERROR_WANT_READ`/`WANT_WRITE`, mapped to the reactor's
/// interest set.
///
/// Ownership: the session does not own `fd` (the caller closes it after `close()`).
/// Threading: one thread at a time. Errors: `TLSError` with OpenSSL's reason (a failed
/// handshake names the alert: unknown CA, certificate expired, hostname mismatch …).
public final class TLSSession {
    /// What the session needs from the socket to make progress.
    public enum Need: Equatable, Sendable {
        case readable
        case writable
    }

    /// The outcome of a read or write.
    public enum IO: Equatable, Sendable {
        /// Bytes moved; a read of 0 means the peer closed the TLS session cleanly.
        case done(Int)
        case blocked(Need)
    }

    private let ssl: OpaquePointer
    private let context: TLSContext  // kept alive with the session
    public private(set) var isEstablished = false

    /// - Parameters:
    ///   - serverName: the client side sends it (SNI) and, unless verification is off,
    ///     requires the server certificate to name it (host name or IP address).
    ///   - resuming: a session saved from an earlier connection to the same server (client
    ///     side): the handshake resumes it when the server still holds its ticket key.
    public init(context: TLSContext, fd: Int32, serverName: String? = nil, resuming: TLSSavedSession? = nil) throws(TLSError) {
        guard let ssl = SSL_new(context.context) else { throw TLSError.fromQueue("SSL_new") }
        self.ssl = ssl
        self.context = context
        guard SSL_set_fd(ssl, fd) == 1 else { throw TLSError.fromQueue("SSL_set_fd") }
        if let resuming { _ = SSL_set_session(ssl, resuming.session) }
        if context.isServer {
            SSL_set_accept_state(ssl)
        } else {
            SSL_set_connect_state(ssl)
            if let serverName {
                let isAddress = serverName.contains(":") || serverName.allSatisfy { $0.isNumber || $0 == "." }
                if !isAddress { _ = gridmon_ssl_set_sni(ssl, serverName) }
                let param = SSL_get0_param(ssl)
                let set = isAddress ? X509_VERIFY_PARAM_set1_ip_asc(param, serverName) : SSL_set1_host(ssl, serverName)
                guard set == 1 else { throw TLSError.fromQueue("server name \(serverName)") }
            }
        }
    }

    deinit { SSL_free(ssl) }

    /// Advances the handshake; nil once it is complete.
    public func handshake() throws(TLSError) -> Need? {
        ERR_clear_error()
        let result = SSL_do_handshake(ssl)
        if result == 1 {
            isEstablished = true
            return nil
        }
        return try blocked(result, "handshake")
    }

    /// Reads decrypted bytes into `buffer`.
    public func read(into buffer: UnsafeMutableRawBufferPointer) throws(TLSError) -> IO {
        ERR_clear_error()
        var count = 0
        let result = SSL_read_ex(ssl, buffer.baseAddress, buffer.count, &count)
        if result == 1 { return .done(count) }
        if SSL_get_error(ssl, result) == SSL_ERROR_ZERO_RETURN { return .done(0) }
        return .blocked(try blocked(result, "read"))
    }

    /// Encrypts and writes up to all of `bytes` (partial writes allowed).
    public func write(_ bytes: UnsafeRawBufferPointer) throws(TLSError) -> IO {
        guard !bytes.isEmpty else { return .done(0) }
        ERR_clear_error()
        var count = 0
        let result = SSL_write_ex(ssl, bytes.baseAddress, bytes.count, &count)
        if result == 1 { return .done(count) }
        return .blocked(try blocked(result, "write"))
    }

    /// Whether OpenSSL holds bytes (decrypted, or records read ahead from the socket) that no
    /// socket readiness will announce: the caller must read again without waiting for epoll.
    public var hasPending: Bool { SSL_has_pending(ssl) == 1 }

    /// "TLSv1.3" etc.
    public var version: String { String(cString: SSL_get_version(ssl)) }

    /// Whether this session resumed an earlier one (no full handshake).
    public var resumed: Bool { SSL_session_reused(ssl) == 1 }

    /// The subject CN of the peer's verified certificate (mutual TLS), if any.
    public var peerCommonName: String? {
        guard let certificate = SSL_get1_peer_certificate(ssl) else { return nil }
        defer { X509_free(certificate) }
        var buffer = [CChar](repeating: 0, count: 256)
        let length = X509_NAME_get_text_by_NID(X509_get_subject_name(certificate), NID_commonName, &buffer, Int32(buffer.count))
        guard length > 0 else { return nil }
        return String(decoding: buffer.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The session to resume on the next connection to this server (client side), if the
    /// server granted one. TLS 1.3 tickets arrive after the handshake: ask late, before `close()`.
    public func savedSession() -> TLSSavedSession? {
        guard let session = SSL_get1_session(ssl) else { return nil }
        guard SSL_SESSION_is_resumable(session) == 1 else {
            SSL_SESSION_free(session)
            return nil
        }
        return TLSSavedSession(session)
    }

    /// Sends close_notify, best effort (the socket is closed next either way).
    public func close() {
        ERR_clear_error()
        _ = SSL_shutdown(ssl)
    }

    private func blocked(_ result: Int32, _ operation: String) throws(TLSError) -> Need {
        let error = SSL_get_error(ssl, result)
        switch error {
        case SSL_ERROR_WANT_READ: return .readable
        case SSL_ERROR_WANT_WRITE: return .writable
        case SSL_ERROR_SYSCALL:
            let failure = TLSError.fromQueue("TLS \(operation)")
            if failure.description != "TLS \(operation)" { throw failure }
            throw TLSError(errno == 0 ? "TLS \(operation): the peer closed the connection" : "TLS \(operation): \(SyscallError(call: "socket", errno: errno))")
        default:
            var failure = TLSError.fromQueue("TLS \(operation)")
            let verify = SSL_get_verify_result(ssl)
            if verify != X509_V_OK {
                failure = TLSError("\(failure.description) (certificate: \(String(cString: X509_verify_cert_error_string(verify))))")
            }
            throw failure
        }
    }
}

/// A TLS session kept for resumption (RFC 8446 §2.2). Owns its OpenSSL reference.
public final class TLSSavedSession {
    let session: OpaquePointer
    init(_ session: OpaquePointer) { self.session = session }
    deinit { SSL_SESSION_free(session) }
}
