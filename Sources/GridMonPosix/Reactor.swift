import CGridMonPosix
import Glibc
import Synchronization

/// Receives readiness events for one registered descriptor.
public protocol EventHandler: AnyObject {
    /// Called on the reactor's thread with what is ready. Must not block.
    func handleEvents(_ events: IOEvents)
}

/// An epoll event loop: descriptors with handlers, timers, and a cross-thread wake-up.
///
/// Modelled on Redis's ae.c/ae_epoll.c: one `epoll_wait` per turn, with its timeout set by
/// the nearest timer; then ready handlers run, then due timers. Level-triggered, so a handler
/// that stops reading early (backpressure) is simply called again later.
///
/// Threading: everything but `handle.wakeUp()` and `handle.stop()` must be called on the
/// thread that runs `run()`. Ownership: the reactor owns its epoll and eventfd descriptors,
/// not the registered ones; unregister before closing a descriptor.
public final class Reactor {
    /// The thread-safe part of a reactor: stop it or wake it from any thread.
    public final class Handle: Sendable {
        fileprivate let eventFD: Int32
        fileprivate let stopRequested = Atomic<Bool>(false)

        fileprivate init(eventFD: Int32) { self.eventFD = eventFD }

        /// Makes the reactor return from `epoll_wait` and run its `onWakeUp` hook.
        public func wakeUp() {
            var one: UInt64 = 1
            _ = Glibc.write(eventFD, &one, 8)  // EAGAIN = counter saturated = already awake
        }

        /// Asks `run()` to return after the current turn.
        public func stop() {
            stopRequested.store(true, ordering: .releasing)
            wakeUp()
        }
    }

    public let handle: Handle
    /// Runs on the reactor thread after every `handle.wakeUp()` (e.g. to drain a queue).
    public var onWakeUp: (() -> Void)?

    private let epollFD: Int32
    /// Each registration's handler under its descriptor, with the generation its epoll events
    /// carry: a descriptor closed and reused (a new connection accepted) within one turn must
    /// not receive the old one's pending events — a stale readable event made a new TLS
    /// connection's first-byte sniff find nothing (a CI run saw it).
    private var handlers: [Int32: (generation: UInt32, handler: EventHandler)] = [:]
    private var nextGeneration: UInt32 = 0
    private var timers = TimerQueue<() -> Void>()
    private var events: UnsafeMutablePointer<epoll_event>
    private let maxEvents: Int32 = 1024

    public init() throws(SyscallError) {
        epollFD = try syscallChecked("epoll_create1") { epoll_create1(Int32(EPOLL_CLOEXEC)) }
        let eventFD: Int32
        do {
            eventFD = try syscallChecked("eventfd") { eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC)) }
        } catch {
            Glibc.close(epollFD)
            throw error
        }
        handle = Handle(eventFD: eventFD)
        events = .allocate(capacity: Int(maxEvents))
        var event = epoll_event(events: EPOLLIN.rawValue, data: epoll_data_t(u64: Self.token(eventFD, 0)))
        try syscallChecked("epoll_ctl(ADD eventfd)") { epoll_ctl(epollFD, EPOLL_CTL_ADD, eventFD, &event) }
    }

    deinit {
        events.deallocate()
        Glibc.close(handle.eventFD)
        Glibc.close(epollFD)
    }

    /// Number of registered descriptors.
    public var registeredCount: Int { handlers.count }

    /// An event's user data: the descriptor in the low half, its registration's generation
    /// (0 only for the reactor's own eventfd) in the high half.
    private static func token(_ fd: Int32, _ generation: UInt32) -> UInt64 {
        UInt64(generation) << 32 | UInt64(UInt32(bitPattern: fd))
    }

    /// Watches `fd` for `events`, calling `handler` when ready.
    public func register(_ fd: Int32, events: IOEvents, handler: EventHandler) throws(SyscallError) {
        nextGeneration = nextGeneration == UInt32.max ? 1 : nextGeneration + 1
        var event = epoll_event(events: events.rawValue, data: epoll_data_t(u64: Self.token(fd, nextGeneration)))
        try syscallChecked("epoll_ctl(ADD)") { epoll_ctl(epollFD, EPOLL_CTL_ADD, fd, &event) }
        handlers[fd] = (nextGeneration, handler)
    }

    /// Changes the events watched on `fd` (e.g. add EPOLLOUT while output is queued).
    public func modify(_ fd: Int32, events: IOEvents) throws(SyscallError) {
        let generation = handlers[fd]?.generation ?? 0
        var event = epoll_event(events: events.rawValue, data: epoll_data_t(u64: Self.token(fd, generation)))
        try syscallChecked("epoll_ctl(MOD)") { epoll_ctl(epollFD, EPOLL_CTL_MOD, fd, &event) }
    }

    /// Stops watching `fd`. Does not close it.
    public func unregister(_ fd: Int32) {
        var event = epoll_event()
        _ = epoll_ctl(epollFD, EPOLL_CTL_DEL, fd, &event)
        handlers[fd] = nil
    }

    /// Runs `action` on this thread once `nanos` have passed.
    @discardableResult
    public func schedule(afterNanos nanos: UInt64, _ action: @escaping () -> Void) -> TimerQueue<() -> Void>.ID {
        timers.schedule(at: Clock.monotonicNanos() &+ nanos, action)
    }

    public func cancel(_ timer: TimerQueue<() -> Void>.ID) {
        timers.cancel(timer)
    }

    /// Runs turns until `handle.stop()`.
    /// - Throws: `SyscallError` if `epoll_wait` itself fails (never for a peer's doing).
    public func run() throws(SyscallError) {
        while !handle.stopRequested.load(ordering: .acquiring) {
            try runOnce()
        }
    }

    /// One turn: wait for readiness (at most until the next timer, or `maxWaitMillis`),
    /// dispatch ready handlers, then due timers.
    public func runOnce(maxWaitMillis: Int32 = -1) throws(SyscallError) {
        var timeout = maxWaitMillis
        if let deadline = timers.nextDeadline() {
            let now = Clock.monotonicNanos()
            let untilTimer = deadline > now ? Int32(min((deadline - now + 999_999) / 1_000_000, 60_000)) : 0
            timeout = timeout < 0 ? untilTimer : min(timeout, untilTimer)
        }
        let ready: Int32
        switch try syscall("epoll_wait", { epoll_wait(epollFD, events, maxEvents, timeout) }) {
        case .done(let n): ready = n
        case .wouldBlock: ready = 0
        }
        for i in 0..<Int(ready) {
            let event = events[i]
            let fd = Int32(bitPattern: UInt32(truncatingIfNeeded: event.data.u64))
            let generation = UInt32(truncatingIfNeeded: event.data.u64 >> 32)
            if fd == handle.eventFD && generation == 0 {
                var value: UInt64 = 0
                _ = Glibc.read(handle.eventFD, &value, 8)
                onWakeUp?()
            } else if let entry = handlers[fd], entry.generation == generation {
                // A handler earlier in this turn may have closed this fd (then it is gone), or
                // closed it and registered a new one on the same number (another generation).
                entry.handler.handleEvents(IOEvents(rawValue: event.events))
            }
        }
        for action in timers.popDue(now: Clock.monotonicNanos()) { action() }
    }
}
