import ArgumentParser
import GridMonConfig
import GridMonPosix
import GridMonStore
#if canImport(Glibc)
import Glibc
#endif

/// Writes what the embedded store holds as InfluxDB line protocol, for loading elsewhere.
struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Print the samples in the embedded store (the outbox) as InfluxDB line protocol.",
        discussion: """
            Reads the outbox under --data-dir without changing it (a running server may keep \
            writing); damaged records are skipped and counted on stderr. Load the output with \
            e.g. `curl --data-binary @out.lp 'http://influxdb:8086/write?db=gridmon&precision=ns'`.

            Exit codes: 0 done, 1 the store cannot be read, 64 bad flags.
            """)

    @Option(help: "Directory of the outbox (and the notification queue). Default: $STATE_DIRECTORY (systemd's StateDirectory=), else ./gridmon-data. [GRIDMON_DATA_DIR]")
    var dataDir: String = Settings.shared.string("data-dir", environment("STATE_DIRECTORY") ?? "gridmon-data")
    @Option(help: "Only samples at or after this Unix time (seconds, may be fractional).")
    var since: Double?
    @Option(help: "Only samples before this Unix time (seconds, may be fractional).")
    var until: Double?
    @Option(help: "Only this node (repeatable).")
    var node: [String] = []

    @Option(help: "TOML file of the server's settings (its data_dir is used). [GRIDMON_CONFIG]")
    var config: String?

    func run() throws {
        // Only the problems: the file's other keys are the server's, not unknown.
        if let problem = Settings.shared.problems.first { throw ValidationError(problem) }
        let names: [String]
        do { names = try Files.list(dataDir).filter { $0.hasSuffix(".seg") }.sorted() } catch {
            Log.error("cannot_read_store", ["error": error])
            throw ExitCode(1)
        }
        // An empty answer from a directory that holds no outbox hid a wrong --data-dir.
        guard !names.isEmpty else {
            Log.error("cannot_read_store", ["error": "\(dataDir) holds no outbox (no *.seg files); is --data-dir the server's?"])
            throw ExitCode(1)
        }
        let sinceNs = since.map { Int64($0 * 1e9) } ?? Int64.min
        let untilNs = until.map { Int64($0 * 1e9) } ?? Int64.max
        let nodes = Set(node)
        var exported = 0
        var damaged = 0
        var out: [UInt8] = []
        for name in names {
            let bytes: [UInt8]
            do { bytes = try Files.read(dataDir + "/" + name) } catch {
                Log.error("cannot_read_store", ["error": error])
                throw ExitCode(1)
            }
            let scan = OutboxSegment.scan(bytes)
            if scan.damage != .none { damaged += 1 }
            for range in scan.payloads {
                guard let batch = try? OutboxBatch(decoding: bytes[range]) else { damaged += 1; continue }
                if !nodes.isEmpty && !nodes.contains(batch.node) { continue }
                for line in batch.lines.split(separator: UInt8(ascii: "\n")) {
                    // The timestamp is the last space-separated field of a line.
                    guard let space = line.lastIndex(of: UInt8(ascii: " ")),
                          let ts = Int64(String(decoding: line[(space + 1)...], as: UTF8.self)),
                          ts >= sinceNs, ts < untilNs else { continue }
                    out.append(contentsOf: line)
                    out.append(UInt8(ascii: "\n"))
                    exported += 1
                }
                if out.count > 1 << 20 { flush(&out) }
            }
        }
        flush(&out)
        Log.info("exported", ["lines": exported, "segments": names.count, "damaged": damaged])
    }

    private func flush(_ out: inout [UInt8]) {
        var offset = 0
        while offset < out.count {
            let n = out.withUnsafeBytes { write(1, $0.baseAddress! + offset, $0.count - offset) }
            if n <= 0 { break }
            offset += n
        }
        out.removeAll(keepingCapacity: true)
    }
}
