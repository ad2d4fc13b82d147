import Glibc

/// A POSIX thread running one closure: the reactors, the outbox committer and the model
/// trainer each get one. (No Dispatch: every long-lived thread of the server is named here.)
///
/// Threading: `join()` from the thread that started it, once.
public final class PosixThread: @unchecked Sendable {  // `thread` is written before the body runs and read by join()
    private var thread = pthread_t()
    private let body: @Sendable () -> Void

    /// Starts `body` on a new thread.
    public init(_ body: @escaping @Sendable () -> Void) {
        self.body = body
        let unmanaged = Unmanaged.passRetained(self)
        pthread_create(&thread, nil, { raw in
            let me = Unmanaged<PosixThread>.fromOpaque(raw!).takeRetainedValue()
            me.body()
            return nil
        }, unmanaged.toOpaque())
    }

    /// Waits for the body to return.
    public func join() { pthread_join(thread, nil) }
}
