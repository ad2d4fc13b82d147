import Glibc
import Testing
@testable import GridMonPosix

/// Echoes what it reads; closes on EOF.
private final class Echo: EventHandler {
    let reactor: Reactor
    let fd: Int32
    init(reactor: Reactor, fd: Int32) { self.reactor = reactor; self.fd = fd }
    func handleEvents(_ events: IOEvents) {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let result = try? buffer.withUnsafeMutableBytes { try Socket.read(fd, into: $0) }
        switch result {
        case .done(let n) where n > 0:
            _ = try? buffer.withUnsafeBytes { try Socket.write(fd, UnsafeRawBufferPointer(rebasing: $0[..<n])) }
        case .wouldBlock: break
        default:
            reactor.unregister(fd)
            Socket.close(fd)
        }
    }
}

private final class Acceptor: EventHandler {
    let reactor: Reactor
    let fd: Int32
    var accepted = 0
    init(reactor: Reactor, fd: Int32) { self.reactor = reactor; self.fd = fd }
    func handleEvents(_ events: IOEvents) {
        while case .done(let connection)? = try? Socket.accept(fd) {
            accepted += 1
            try? reactor.register(connection.fd, events: .readable, handler: Echo(reactor: reactor, fd: connection.fd))
        }
    }
}

/// Blocking helper for the client side of a test: waits up to `millis` for `fd` to be ready.
private func waitReadable(_ fd: Int32, millis: Int32 = 5000) -> Bool {
    var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
    return poll(&pfd, 1, millis) == 1
}

@Suite struct ReactorTests {
    @Test func echoesOverLoopbackAndClosesOnEOF() throws {
        let reactor = try Reactor()
        let listener = try Socket.listen(SocketAddress(host: "127.0.0.1", port: 0))
        defer { Socket.close(listener) }
        let acceptor = Acceptor(reactor: reactor, fd: listener)
        try reactor.register(listener, events: .readable, handler: acceptor)
        let address = try Socket.localAddress(listener)

        let clients = try (0..<10).map { _ in try Socket.connect(address) }
        for (i, client) in clients.enumerated() {
            var sent = false
            for _ in 0..<200 where !sent {
                try reactor.runOnce(maxWaitMillis: 10)
                let message = Array("hello \(i)".utf8)
                if case .done? = try? message.withUnsafeBytes({ try Socket.write(client, $0) }) { sent = true }
            }
            #expect(sent)
        }
        for (i, client) in clients.enumerated() {
            var got: [UInt8] = []
            for _ in 0..<500 where got.count < "hello \(i)".utf8.count {
                try reactor.runOnce(maxWaitMillis: 5)
                var buffer = [UInt8](repeating: 0, count: 64)
                if case .done(let n)? = try? buffer.withUnsafeMutableBytes({ try Socket.read(client, into: $0) }), n > 0 {
                    got += buffer[..<n]
                }
            }
            #expect(String(decoding: got, as: UTF8.self) == "hello \(i)")
        }
        #expect(acceptor.accepted == 10)
        #expect(reactor.registeredCount == 11)
        for client in clients { Socket.close(client) }
        for _ in 0..<100 where reactor.registeredCount > 1 { try reactor.runOnce(maxWaitMillis: 10) }
        #expect(reactor.registeredCount == 1)
    }

    @Test func timersFireInOrderAndCancelledOnesDoNot() throws {
        let reactor = try Reactor()
        var fired: [Int] = []
        reactor.schedule(afterNanos: 20_000_000) { fired.append(2) }
        reactor.schedule(afterNanos: 1_000_000) { fired.append(1) }
        let cancelled = reactor.schedule(afterNanos: 5_000_000) { fired.append(99) }
        reactor.cancel(cancelled)
        reactor.schedule(afterNanos: 30_000_000) { reactor.handle.stop() }
        try reactor.run()
        #expect(fired == [1, 2])
    }

    @Test func wakeUpAndStopWorkFromAnotherThread() throws {
        let reactor = try Reactor()
        var wakeUps = 0
        reactor.onWakeUp = { wakeUps += 1 }
        let handle = reactor.handle
        let thread = PosixThread { handle.wakeUp(); usleep(20_000); handle.stop() }
        try reactor.run()
        thread.join()
        #expect(wakeUps >= 1)
    }
}

/// Counts the events it is handed.
private final class Counter: EventHandler {
    var calls = 0
    var onEvent: (() -> Void)?
    func handleEvents(_ events: IOEvents) {
        calls += 1
        onEvent?()
    }
}

@Suite struct ReactorDescriptorReuseTests {
    /// Two descriptors are ready in one turn; the first one's handler closes the second and
    /// registers a new descriptor that gets the same number. The second's pending event is
    /// stale: the new handler must not receive it (a new TLS connection once got a readable
    /// event with nothing to read, and took a plain agent for a TLS one).
    @Test func aDescriptorReusedWithinATurnDoesNotGetTheOldOnesEvent() throws {
        let reactor = try Reactor()
        var first: [Int32] = [0, 0]
        var second: [Int32] = [0, 0]
        var empty: [Int32] = [0, 0]
        #expect(pipe(&first) == 0 && pipe(&second) == 0 && pipe(&empty) == 0)
        defer { for fd in [first[0], first[1], second[0], second[1], empty[0], empty[1]] { close(fd) } }
        _ = write(first[1], "x", 1)
        _ = write(second[1], "x", 1)
        let a = Counter(), b = Counter(), fresh = Counter()
        var reused: Int32 = -1
        // Whichever runs first closes the other's read end and puts a descriptor with nothing
        // to read on its number (dup2 closes and reuses the number in one step).
        func takeOver(_ victim: Int32) {
            guard reused < 0 else { return }
            reactor.unregister(victim)
            #expect(dup2(empty[0], victim) == victim)
            reused = victim
            try? reactor.register(victim, events: .readable, handler: fresh)
        }
        a.onEvent = { takeOver(second[0]) }
        b.onEvent = { takeOver(first[0]) }
        try reactor.register(first[0], events: .readable, handler: a)
        try reactor.register(second[0], events: .readable, handler: b)
        try reactor.runOnce(maxWaitMillis: 1000)
        #expect(a.calls + b.calls == 1)
        #expect(fresh.calls == 0, "the reused descriptor got the closed one's stale event")
        for fd in [first[0], second[0]] { reactor.unregister(fd) }
    }
}
