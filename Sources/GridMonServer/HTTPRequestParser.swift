import GridMonCore

/// A minimal HTTP/1.1 request-head parser for the admin port: an explicit state machine fed
/// in any chunking, with every limit checked before bytes are kept.
///
/// Only what a metrics scraper or health probe sends is supported: a request line and headers,
/// no body (a request announcing one is refused with 413). Pure: no I/O.
/// Ownership: one per admin connection; not thread-safe.
public struct HTTPRequestParser: Sendable {
    public struct Request: Equatable, Sendable {
        public var method: String
        /// The path without the query string.
        public var path: String
        public var query: String
        public var headers: [(name: String, value: String)]

        public static func == (a: Request, b: Request) -> Bool {
            a.method == b.method && a.path == b.path && a.query == b.query
                && a.headers.map(\.name) == b.headers.map(\.name) && a.headers.map(\.value) == b.headers.map(\.value)
        }

        public func header(_ name: String) -> String? {
            headers.first { $0.name.lowercased() == name.lowercased() }?.value
        }
    }

    /// Why a request was refused, with the status code to answer.
    public struct Failure: Error, Equatable, Sendable {
        public var status: Int
        public var reason: String
    }

    enum State: Equatable, Sendable {
        case requestLine
        case headers
        case done
        case failed
    }

    /// Longest request head accepted (request line + headers), bytes.
    public static let maxHeadBytes = 16 * 1024
    public static let maxHeaders = 64

    private var state = State.requestLine
    private var line: [UInt8] = []
    private var headBytes = 0
    private var request = Request(method: "", path: "", query: "", headers: [])

    public init() {}

    /// Feeds bytes; returns the request once its head is complete, nil while more is needed.
    /// Bytes after the head are ignored (no pipelining: the admin port closes after answering).
    public mutating func feed(_ bytes: UnsafeRawBufferPointer) throws(Failure) -> Request? {
        for byte in bytes {
            guard state != .done else { return request }
            guard state != .failed else { throw Failure(status: 400, reason: "bad request") }
            headBytes += 1
            guard headBytes <= Self.maxHeadBytes else { throw fail(431, "request head over \(Self.maxHeadBytes) bytes") }
            if byte != UInt8(ascii: "\n") {
                line.append(byte)
                continue
            }
            if line.last == UInt8(ascii: "\r") { line.removeLast() }
            let text = String(decoding: line, as: UTF8.self)
            line.removeAll(keepingCapacity: true)
            switch state {
            case .requestLine: try parseRequestLine(text)
            case .headers:
                if text.isEmpty {
                    if let length = request.header("content-length"), length != "0" { throw fail(413, "request bodies are not accepted") }
                    if request.header("transfer-encoding") != nil { throw fail(413, "request bodies are not accepted") }
                    state = .done
                    return request
                }
                try parseHeader(text)
            case .done, .failed: break
            }
        }
        return state == .done ? request : nil
    }

    private mutating func parseRequestLine(_ text: String) throws(Failure) {
        let parts = text.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, parts[1].hasPrefix("/") else { throw fail(400, "malformed request line") }
        guard parts[2] == "HTTP/1.1" || parts[2] == "HTTP/1.0" else { throw fail(505, "only HTTP/1.0 and 1.1") }
        request.method = String(parts[0])
        let target = parts[1].split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        request.path = String(target[0])
        request.query = target.count > 1 ? String(target[1]) : ""
        state = .headers
    }

    private mutating func parseHeader(_ text: String) throws(Failure) {
        guard let colon = text.firstIndex(of: ":"), colon != text.startIndex else { throw fail(400, "malformed header line") }
        guard request.headers.count < Self.maxHeaders else { throw fail(431, "more than \(Self.maxHeaders) headers") }
        let name = String(text[..<colon])
        let value = String(text[text.index(after: colon)...]).trimmingSpaces()
        request.headers.append((name, value))
    }

    private mutating func fail(_ status: Int, _ reason: String) -> Failure {
        state = .failed
        return Failure(status: status, reason: reason)
    }
}

/// Builds a complete HTTP/1.1 response that closes the connection.
public func httpResponse(status: Int, contentType: String = "text/plain; charset=utf-8", body: String, head: Bool = false,
                         headers: [(String, String)] = []) -> [UInt8] {
    let reasons = [200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
                   413: "Content Too Large", 431: "Request Header Fields Too Large", 503: "Service Unavailable",
                   505: "HTTP Version Not Supported"]
    let bodyBytes = Array(body.utf8)
    let header = "HTTP/1.1 \(status) \(reasons[status] ?? "Error")\r\nContent-Type: \(contentType)\r\n"
        + headers.map { "\($0.0): \($0.1)\r\n" }.joined()
        + "Content-Length: \(bodyBytes.count)\r\nConnection: close\r\n\r\n"
    return Array(header.utf8) + (head ? [] : bodyBytes)
}
