import Glibc
import Testing
@testable import GridMonPosix

@Suite struct SyscallTests {
    @Test func failureCarriesErrnoAndCallName() {
        #expect(throws: SyscallError(call: "read", errno: EBADF)) {
            var byte: UInt8 = 0
            _ = try syscall("read") { Glibc.read(-1, &byte, 1) }
        }
        #expect(SyscallError(call: "bind", errno: EADDRINUSE).description == "bind: Address already in use (errno 98)")
    }

    @Test func emptyNonBlockingReadWouldBlock() throws {
        var fds: [Int32] = [0, 0]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue | SOCK_NONBLOCK.rawValue), 0, &fds) == 0)
        defer { Glibc.close(fds[0]); Glibc.close(fds[1]) }
        var buffer = [UInt8](repeating: 0, count: 16)
        let result = try buffer.withUnsafeMutableBytes { try Socket.read(fds[0], into: $0) }
        guard case .wouldBlock = result else { Issue.record("expected wouldBlock, got \(result)"); return }
    }

    @Test func interruptedCallIsRetried() throws {
        var calls = 0
        let result = try syscall("fake") { () -> Int32 in
            calls += 1
            if calls < 3 { errno = EINTR; return -1 }
            return 7
        }
        guard case .done(7) = result else { Issue.record("expected done(7)"); return }
        #expect(calls == 3)
    }

    @Test func checkedCallReportsWouldBlockAsAnError() {
        #expect(throws: SyscallError(call: "fake", errno: EAGAIN)) {
            try syscallChecked("fake") { () -> Int32 in errno = EAGAIN; return -1 }
        }
    }

    @Test func addressesParse() {
        #expect(SocketAddress(parsing: "127.0.0.1:7070") == SocketAddress(host: "127.0.0.1", port: 7070))
        #expect(SocketAddress(parsing: "localhost:1") == SocketAddress(host: "127.0.0.1", port: 1))
        #expect(SocketAddress(parsing: ":9") == SocketAddress(host: "0.0.0.0", port: 9))
        #expect(SocketAddress(parsing: "127.0.0.1") == nil)
        #expect(SocketAddress(parsing: "nohost:80") == nil)
        #expect(SocketAddress(parsing: "127.0.0.1:99999") == nil)
    }

    @Test func bindingATakenPortNamesTheAddress() throws {
        let first = try Socket.listen(SocketAddress(host: "127.0.0.1", port: 0))
        defer { Socket.close(first) }
        let taken = try Socket.localAddress(first)
        #expect(throws: SyscallError(call: "bind(\(taken))", errno: EADDRINUSE)) {
            Socket.close(try Socket.listen(taken))
        }
    }
}

@Suite struct TimerQueueTests {
    @Test func firesInDeadlineOrderAndOnlyWhenDue() {
        var queue = TimerQueue<String>()
        queue.schedule(at: 30, "c")
        queue.schedule(at: 10, "a")
        queue.schedule(at: 20, "b")
        queue.schedule(at: 10, "a2")
        #expect(queue.nextDeadline() == 10)
        #expect(queue.popDue(now: 5) == [])
        #expect(queue.popDue(now: 20) == ["a", "a2", "b"])
        #expect(queue.popDue(now: 100) == ["c"])
        #expect(queue.nextDeadline() == nil)
    }

    @Test func cancelledTimersNeverFire() {
        var queue = TimerQueue<Int>()
        let ids = (0..<100).map { queue.schedule(at: UInt64(100 - $0), $0) }
        for (i, id) in ids.enumerated() where i % 2 == 0 { queue.cancel(id) }
        #expect(queue.count == 50)
        let fired = queue.popDue(now: 1000)
        #expect(fired == Array(stride(from: 99, through: 1, by: -2)))
        #expect(queue.count == 0)
    }
}
