import Glibc

/// A failed system call: its name and `errno`, e.g. `bind: Address already in use (errno 98)`.
public struct SyscallError: Error, Equatable, CustomStringConvertible, Sendable {
    public let call: String
    public let errno: Int32

    public init(call: String, errno: Int32) {
        self.call = call
        self.errno = errno
    }

    public var description: String {
        "\(call): \(String(cString: strerror(errno))) (errno \(errno))"
    }
}

/// The outcome of a call on a non-blocking descriptor: a result, or "try again when ready".
public enum IOResult<T: Sendable>: Sendable {
    case done(T)
    case wouldBlock
}

/// The one wrapper every syscall in GridMon goes through.
///
/// Retries on `EINTR` (a signal arrived mid-call), reports `EAGAIN`/`EWOULDBLOCK` as
/// `.wouldBlock`, and throws any other failure as a `SyscallError` naming the call.
/// `body` returns the call's result; a negative value means failure with `errno` set.
@inline(__always)
public func syscall<T: FixedWidthInteger & Sendable>(_ name: String, _ body: () -> T) throws(SyscallError) -> IOResult<T> {
    while true {
        let result = body()
        if result >= 0 { return .done(result) }
        let error = Glibc.errno
        switch error {
        case EINTR: continue
        case EAGAIN, EWOULDBLOCK: return .wouldBlock
        default: throw SyscallError(call: name, errno: error)
        }
    }
}

/// `syscall` for calls that cannot block (socket, bind, epoll_ctl...): a would-block answer
/// is reported as the error it is.
@inline(__always)
@discardableResult
public func syscallChecked<T: FixedWidthInteger & Sendable>(_ name: String, _ body: () -> T) throws(SyscallError) -> T {
    switch try syscall(name, body) {
    case .done(let value): return value
    case .wouldBlock: throw SyscallError(call: name, errno: EAGAIN)
    }
}
