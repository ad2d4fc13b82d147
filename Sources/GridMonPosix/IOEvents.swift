import CGridMonPosix

/// Readiness kinds, as epoll reports them (the raw values are the EPOLL* bits).
public struct IOEvents: OptionSet, Sendable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let readable = IOEvents(rawValue: EPOLLIN.rawValue)
    public static let writable = IOEvents(rawValue: EPOLLOUT.rawValue)
    /// The peer shut down its writing side (EPOLLRDHUP).
    public static let readHangup = IOEvents(rawValue: EPOLLRDHUP.rawValue)
    /// Both directions are closed (always reported, no need to ask).
    public static let hangup = IOEvents(rawValue: EPOLLHUP.rawValue)
    /// An error is pending on the descriptor (always reported).
    public static let error = IOEvents(rawValue: EPOLLERR.rawValue)
}
