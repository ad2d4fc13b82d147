/// A gRPC status code, as carried by `Error.code`.
///
/// Values and meanings follow https://grpc.github.io/grpc/core/md_doc_statuscodes.html.
/// Codes this version does not know are kept as `other(_)` so a newer peer's code survives
/// a round trip instead of being rewritten.
public enum StatusCode: Equatable, Hashable, Sendable, CustomStringConvertible {
    case ok, cancelled, unknown, invalidArgument, deadlineExceeded, notFound, alreadyExists
    case permissionDenied, resourceExhausted, failedPrecondition, aborted, outOfRange
    case unimplemented, `internal`, unavailable, dataLoss, unauthenticated
    case other(UInt32)

    private static let known: [StatusCode] = [
        .ok, .cancelled, .unknown, .invalidArgument, .deadlineExceeded, .notFound, .alreadyExists,
        .permissionDenied, .resourceExhausted, .failedPrecondition, .aborted, .outOfRange,
        .unimplemented, .internal, .unavailable, .dataLoss, .unauthenticated,
    ]
    private static let names = [
        "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
        "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
        "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
        "UNAUTHENTICATED",
    ]

    public init(rawValue: UInt32) {
        self = rawValue < Self.known.count ? Self.known[Int(rawValue)] : .other(rawValue)
    }

    public var rawValue: UInt32 {
        if case .other(let value) = self { return value }
        return UInt32(Self.known.firstIndex(of: self)!)
    }

    /// The canonical upper-case name, e.g. `UNAUTHENTICATED`.
    public var description: String {
        if case .other(let value) = self { return "CODE_\(value)" }
        return Self.names[Int(rawValue)]
    }
}
