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
