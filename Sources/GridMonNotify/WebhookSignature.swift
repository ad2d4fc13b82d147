import COpenSSL

/// The webhook signature: `X-GridMon-Signature: sha256=HEX(HMAC-SHA256(secret, "<timestamp>.<body>"))`
/// next to `X-GridMon-Timestamp: <unix seconds>`. Signing the timestamp with the body lets a
/// receiver refuse replays: it recomputes the HMAC and rejects a timestamp older than it
/// accepts (5 minutes is customary, as Stripe and Slack do). OpenSSL's HMAC (`EVP_Q_mac`).
public enum WebhookSignature {
    public static let timestampHeader = "X-GridMon-Timestamp"
    public static let signatureHeader = "X-GridMon-Signature"

    /// `sha256=<64 hex digits>` for `body` sent at `timestamp`.
    public static func sign(secret: [UInt8], timestamp: Int64, body: [UInt8]) -> String {
        let message = Array("\(timestamp).".utf8) + body
        var mac = [UInt8](repeating: 0, count: 32)
        var length = 0
        _ = secret.withUnsafeBytes { key in
            message.withUnsafeBufferPointer { data in
                EVP_Q_mac(nil, "HMAC", nil, "SHA256", nil, key.baseAddress, key.count, data.baseAddress, data.count, &mac, mac.count, &length)
            }
        }
        let hex = Array("0123456789abcdef".utf8)
        var out = "sha256="
        for byte in mac.prefix(length) {
            out.unicodeScalars.append(Unicode.Scalar(hex[Int(byte >> 4)]))
            out.unicodeScalars.append(Unicode.Scalar(hex[Int(byte & 15)]))
        }
        return out
    }
}
