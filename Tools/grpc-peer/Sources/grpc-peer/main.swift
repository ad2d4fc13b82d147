// The gRPC peer (issue #17, item 4): GridMon's agent→server exchange carried by grpc-swift-2.
//
//   grpc-peer serve --port P [--threads 1]
//   grpc-peer load --port P --connections C --samples N [--batch 64] [--window 4096]
//
// One bidirectional-streaming method, `gridmon.peer.Ingest/Stream`: the client sends
// `gridmon.v1.Frame` payloads holding a SampleBatch (the bytes GridMon's agents send, made by
// GridMon's own codec), the server decodes each, judges it as `gridmon-stream-server --scorer
// static --store none` does (max of CPU, memory, disk against 0.95) and answers with an Ack
// frame naming the highest seq — GridMon's per-frame ack, which a client-streaming RPC (one
// answer at the end) could not give, so there would be no ack latency to compare.
//
// `load` opens C connections with one stream each (as C agents would), sends N samples in
// all in batches of `--batch`, keeps at most `--window` samples unacknowledged per stream,
// and prints one JSON line: samples acked, seconds, ack latency percentiles (µs), the
// flood's own field names, so the bench reads both alike.
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import GridMonWire
import NIOPosix
import Synchronization

struct Bytes: MessageSerializer, MessageDeserializer {
    func serialize<B: GRPCContiguousBytes>(_ message: [UInt8]) throws -> B { B(message) }
    func deserialize<B: GRPCContiguousBytes>(_ bytes: B) throws -> [UInt8] { bytes.withUnsafeBytes { Array($0) } }
}

let method = MethodDescriptor(fullyQualifiedService: "gridmon.peer.Ingest", method: "Stream")

/// The server side: decode, judge, ack, per batch.
struct Ingest: RegistrableRPCService {
    func registerMethods<Transport: ServerTransport>(with router: inout RPCRouter<Transport>) {
        router.registerHandler(forMethod: method, deserializer: Bytes(), serializer: Bytes()) { request, _ in
            StreamingServerResponse { writer in
                let encoder = MessageEncoder()
                let decoder = MessageDecoder()  // as gridmon-stream-server decodes (one per reactor thread there)
                for try await payload in request.messages {
                    let message = try payload.withUnsafeBytes { try decoder.decode($0) }
                    guard case .samples(let batch) = message else {
                        throw RPCError(code: .invalidArgument, message: "expected a SampleBatch frame")
                    }
                    var highest: UInt64 = 0
                    var anomalies: [Verdict] = []
                    for s in batch.samples {
                        highest = max(highest, s.seq)
                        let level = max(s.cpuPercent, s.memoryPercent, s.diskPercent) / 100
                        if level >= 0.95 { anomalies.append(Verdict(seq: s.seq, score: level)) }
                    }
                    try await writer.write(encoder.encodePayload(.ack(Ack(streamID: batch.streamID, durableSeq: highest, anomalies: anomalies))))
                }
                return [:]
            }
        }
    }
}

func option(_ name: String, _ fallback: Int) -> Int {
    let args = CommandLine.arguments
    guard let i = args.firstIndex(of: "--" + name), i + 1 < args.count, let value = Int(args[i + 1]) else { return fallback }
    return value
}

func fail(_ text: String) -> Never {
    FileHandle.standardError.write(Data("grpc-peer: \(text)\n".utf8))
    exit(64)
}

func serve() async throws {
    let threads = option("threads", 1)
    var config = HTTP2ServerTransport.Posix.Config.defaults
    config.http2.maxConcurrentStreams = 16_384
    let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
    let server = GRPCServer(
        transport: .http2NIOPosix(address: .ipv4(host: "127.0.0.1", port: option("port", 7170)), transportSecurity: .plaintext,
                                  config: config, eventLoopGroup: group),
        services: [Ingest()])
    try await withThrowingDiscardingTaskGroup { tasks in
        tasks.addTask { try await server.serve() }
        if let address = try await server.listeningAddress {
            FileHandle.standardError.write(Data("grpc-peer: listening on \(address)\n".utf8))
        }
    }
}

/// One stream's sending and acks: a window of unacknowledged samples, latency per batch.
func stream(_ client: GRPCClient<HTTP2ClientTransport.Posix>, id: UInt32, samples: Int, batch: Int, window: Int) async throws -> [UInt32] {
    let sentAt = Mutex<[UInt64: UInt64]>([:])  // highest seq of a batch → send time (ns)
    let (credits, credit) = AsyncStream<Void>.makeStream()
    let latencies = Mutex<[UInt32]>([])
    let now = Int64(Date().timeIntervalSince1970 * 1e9)
    let batches = (samples + batch - 1) / batch
    let windowBatches = max(1, window / batch)
    // Frames are made as they are sent, as gridmon-flood makes them (made all up front, a
    // 2 M-sample stream held 170 MB in the client).
    let request = StreamingClientRequest<[UInt8]> { writer in
        let encoder = MessageEncoder()
        var inFlight = 0
        var credits = credits.makeAsyncIterator()
        for i in 0..<batches {
            if inFlight >= windowBatches {
                await credits.next()
                inFlight -= 1
            }
            let first = UInt64(i * batch)
            let count = min(batch, samples - i * batch)
            let rows = (0..<count).map { k -> Sample in
                let n = first + UInt64(k) + 1
                let x = Double(n % 97)
                return Sample(seq: n, timestampNs: now + Int64(n) * 1_000_000_000, cpuPercent: 20 + x / 4, memoryPercent: 40 + x / 8,
                              diskPercent: 60, load1: 0.5 + x / 100, netRxBytesPerSec: 1e5 + x * 10, netTxBytesPerSec: 5e4 + x * 10,
                              diskReadBytesPerSec: 1e4, diskWriteBytesPerSec: 2e4)
            }
            let payload = encoder.encodePayload(.samples(SampleBatch(streamID: id, samples: rows)))
            sentAt.withLock { $0[first + UInt64(count)] = DispatchTime.now().uptimeNanoseconds }
            try await writer.write(payload)
            inFlight += 1
        }
    }
    try await client.bidirectionalStreaming(request: request, descriptor: method, serializer: Bytes(), deserializer: Bytes(),
                                            options: .defaults) { response in
        var acked = 0
        let decoder = MessageDecoder()
        for try await payload in response.messages {
            let message = try payload.withUnsafeBytes { try decoder.decode($0) }
            guard case .ack(let ack) = message else { continue }
            let now = DispatchTime.now().uptimeNanoseconds
            if let sent = sentAt.withLock({ $0.removeValue(forKey: ack.durableSeq) }) {
                latencies.withLock { $0.append(UInt32(min(UInt64(UInt32.max), (now - sent) / 1000))) }
            }
            credit.yield()
            acked += 1
            if acked == batches { break }
        }
    }
    return latencies.withLock { $0 }
}

func load() async throws {
    let port = option("port", 7170)
    let connections = option("connections", 1)
    let samples = option("samples", 100_000)
    let batch = option("batch", 64)
    let window = option("window", 4096)
    guard connections > 0, samples >= connections, batch > 0 else { fail("need --connections ≥ 1, --samples ≥ connections, --batch ≥ 1") }
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    var clients: [GRPCClient<HTTP2ClientTransport.Posix>] = []
    for _ in 0..<connections {
        clients.append(GRPCClient(transport: try .http2NIOPosix(target: .ipv4(address: "127.0.0.1", port: port), transportSecurity: .plaintext,
                                                                eventLoopGroup: group)))
    }
    let started = DispatchTime.now().uptimeNanoseconds
    var all: [UInt32] = []
    try await withThrowingTaskGroup(of: [UInt32].self) { tasks in
        for client in clients { tasks.addTask { try await client.runConnections() ; return [] } }
        try await withThrowingTaskGroup(of: [UInt32].self) { streams in
            for (i, client) in clients.enumerated() {
                let share = samples / connections + (i < samples % connections ? 1 : 0)
                streams.addTask { try await stream(client, id: UInt32(i + 1), samples: share, batch: batch, window: window) }
            }
            for try await latencies in streams { all += latencies }
        }
        for client in clients { client.beginGracefulShutdown() }
        for try await _ in tasks {}
    }
    let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
    all.sort()
    func pct(_ p: Double) -> UInt32 { all.isEmpty ? 0 : all[min(all.count - 1, Int(Double(all.count) * p))] }
    print("{\"samples_acked\":\(samples),\"batches_acked\":\(all.count),\"seconds\":\(seconds),"
          + "\"ack_latency_us\":{\"p50\":\(pct(0.5)),\"p99\":\(pct(0.99)),\"max\":\(all.last ?? 0)}}")
}

switch CommandLine.arguments.dropFirst().first {
case "serve": try await serve()
case "load": try await load()
default: fail("usage: grpc-peer serve --port P [--threads N] | load --port P --connections C --samples N [--batch B] [--window W]")
}
