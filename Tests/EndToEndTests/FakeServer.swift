import Foundation
import Glibc
import GridMonPosix
import GridMonWire

/// A stand-in GridMon server on loopback (IPv4 or IPv6) that behaves well or badly on
/// purpose, to see how the real agent copes. Runs on its own thread until `stop()`.
final class FakeServer: @unchecked Sendable {  // counters are guarded by lock
    enum Behavior {
        /// Accepts and never answers.
        case silent
        /// Answers Hello with a Welcome, then closes.
        case welcomeThenClose
        /// Sends bytes that are not the GridMon preface.
        case garbage
        /// Welcomes and acknowledges every sample, like a server.
        case acknowledging
        /// Welcomes, then answers samples with an Ack of 2,000,000 empty verdicts: 4 MB on
        /// the wire, hundreds of MB once protobuf-c has built them.
        case bloatedAck
        /// Welcomes, then flags every sample anomalous, 250 verdicts an Ack (the agent logs
        /// `Agent.maxAnomalyLinesPerAck` of them and sums up the rest).
        case flaggingEverything
    }

    /// `Frame{ack: Ack{stream_id, durable_seq, anomalies: [Verdict{}] × 2,000,000}}`.
    private static func bloatedAck(streamID: UInt32, durableSeq: UInt64) -> [UInt8] {
        var ack: [UInt8] = [0x08] + protobufVarint(UInt64(streamID)) + [0x10] + protobufVarint(durableSeq)
        ack.reserveCapacity(ack.count + 4_000_000)
        for _ in 0..<2_000_000 { ack += [0x1A, 0x00] }
        return rawFrame(protobufField(4, ack))
    }

    let port: UInt16
    private let listener: Int32
    private let behavior: Behavior
    private let lock = NSLock()
    private var _accepted = 0
    private var _samples = 0
    private var running = true
    private var thread: Thread?

    var accepted: Int { lock.lock(); defer { lock.unlock() }; return _accepted }
    var samples: Int { lock.lock(); defer { lock.unlock() }; return _samples }

    init(_ behavior: Behavior, ipv6: Bool = false) throws {
        self.behavior = behavior
        let listener = socket(ipv6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
        guard listener >= 0 else { throw HarnessError("socket failed") }
        var result: Int32
        if ipv6 {
            var address = sockaddr_in6()
            address.sin6_family = sa_family_t(AF_INET6)
            address.sin6_addr = in6addr_loopback
            result = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) } }
        } else {
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
            result = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        }
        guard result == 0, listen(listener, 16) == 0 else { throw HarnessError("bind/listen failed: errno \(errno)") }
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) } }
        port = withUnsafeBytes(of: storage) { raw in UInt16(raw[2]) << 8 | UInt16(raw[3]) }  // sin_port / sin6_port, network order
        self.listener = listener
        let thread = Thread { [weak self] in self?.loop() }
        self.thread = thread
        thread.start()
    }

    /// Ends the thread (it holds the server until then) and closes every socket.
    func stop() {
        lock.lock(); running = false; lock.unlock()
    }

    private var isRunning: Bool { lock.lock(); defer { lock.unlock() }; return running }

    private struct Peer {
        var fd: Int32
        var decoder = FrameDecoder()  // reads the preface too
    }

    private func loop() {
        var peers: [Peer] = []
        let encoder = MessageEncoder()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while isRunning {
            var fds = [pollfd(fd: listener, events: Int16(POLLIN), revents: 0)] + peers.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
            guard poll(&fds, nfds_t(fds.count), 100) > 0 else { continue }
            let polled = peers
            peers = []
            if fds[0].revents != 0 {
                let fd = accept(listener, nil, nil)
                if fd >= 0 {
                    lock.lock(); _accepted += 1; lock.unlock()
                    if behavior == .garbage {
                        let junk = Array("HTTP/1.1 400 Bad Request\r\n\r\n".utf8) + (0..<64).map { UInt8(truncatingIfNeeded: $0 &* 37) }
                        _ = send(fd, junk, junk.count, Int32(MSG_NOSIGNAL))
                    }
                    peers.append(Peer(fd: fd))
                }
            }
            var keep: [Peer] = peers  // the one just accepted, if any
            for (i, var peer) in polled.enumerated() {
                guard fds[i + 1].revents != 0 else { keep.append(peer); continue }
                let n = recv(peer.fd, &buffer, buffer.count, 0)
                if n <= 0 { close(peer.fd); continue }
                if behavior == .silent || behavior == .garbage { keep.append(peer); continue }
                let bytes = Array(buffer[..<n])
                var out: [UInt8] = []
                var closeNow = false
                _ = try? bytes.withUnsafeBytes { raw in
                    try peer.decoder.decode(raw) { payload in
                        guard let message = try? Message(payload: payload) else { return }
                        switch message {
                        case .hello(let hello):
                            out += Preface.bytes
                            encoder.appendFrame(.welcome(Welcome(streamID: hello.streamID, serverID: "fake")), to: &out)
                            if self.behavior == .welcomeThenClose { closeNow = true }
                        case .samples(let batch):
                            self.lock.lock(); self._samples += batch.samples.count; self.lock.unlock()
                            if let last = batch.samples.last {
                                if self.behavior == .bloatedAck {
                                    out += Self.bloatedAck(streamID: batch.streamID, durableSeq: last.seq)
                                } else if self.behavior == .flaggingEverything {
                                    let verdicts = (0..<250).map { Verdict(seq: last.seq, score: 0.5 + Double($0) / 1000) }
                                    encoder.appendFrame(.ack(Ack(streamID: batch.streamID, durableSeq: last.seq, anomalies: verdicts)), to: &out)
                                } else {
                                    encoder.appendFrame(.ack(Ack(streamID: batch.streamID, durableSeq: last.seq)), to: &out)
                                }
                            }
                        default: break
                        }
                    }
                }
                if !out.isEmpty { _ = send(peer.fd, out, out.count, Int32(MSG_NOSIGNAL)) }
                if closeNow { close(peer.fd) } else { keep.append(peer) }
            }
            peers = keep
        }
        for peer in peers { close(peer.fd) }
        close(listener)
    }
}

/// CPU seconds (user + system) a process used so far, from /proc/PID/stat.
func cpuSeconds(_ pid: Int32) -> Double {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = text.lastIndex(of: ")") else { return 0 }
    let fields = text[text.index(after: close)...].split(separator: " ")
    // After the command: state is field 3, utime 14, stime 15 (proc(5)), so indexes 11 and 12 here.
    guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
    return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
}
