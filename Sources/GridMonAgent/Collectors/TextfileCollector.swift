import GridMonPosix
import GridMonWire

/// `textfile`: gauges that applications and cron jobs write, node_exporter's textfile
/// collector: every `*.prom` file of `directory`, read each round, `name value` lines
/// (`Textfile`). A gauge keeps the name written (labels included).
///
/// Bounded because other programs write the directory: files past `maxFiles` or larger than
/// `maxFileBytes` are skipped, at most `Textfile.maxGauges` gauges per round, and a name that
/// a collector already sent is skipped. Each problem is logged once at warn (file, line, why).
/// Write files atomically (to a temporary name, then rename), as with node_exporter.
public final class TextfileCollector: Collector {
    public let name = "textfile"
    public static let maxFiles = 64
    public static let maxFileBytes = 1 << 20
    private let directory: String
    private var reported = Set<String>()

    public init(directory: String) { self.directory = directory }

    public func collect(into sample: inout Sample, files: ProcFiles, nowNs: Int64) {
        let names: [String]
        do { names = try Files.list(directory).filter { $0.hasSuffix(".prom") } } catch {
            return report("\(directory): \(error)")
        }
        if names.count > Self.maxFiles { report("\(directory): more than \(Self.maxFiles) .prom files; the rest are skipped") }
        var taken = Set(sample.extra.map(\.name)).union(MetricKeys.fixed)
        var budget = Textfile.maxGauges
        for file in names.prefix(Self.maxFiles) where budget > 0 {
            let path = directory + "/" + file
            let text: String
            do { text = try Files.readText(path, maxBytes: Self.maxFileBytes) } catch {
                report("\(path): \(error)")
                continue
            }
            let parsed = Textfile.parse(text[...])
            for problem in parsed.problems { report("\(path):\(problem.line): \(problem.message)") }
            for gauge in parsed.gauges where budget > 0 {
                guard taken.insert(gauge.name).inserted else {
                    report("\(path): gauge \(gauge.name) is already sent (by a collector or an earlier file); skipped")
                    continue
                }
                sample.add(gauge.name, gauge.value)
                budget -= 1
            }
        }
    }

    private func report(_ problem: String) {
        guard reported.count < 1024, reported.insert(problem).inserted else { return }
        Log.warning("textfile_problem", ["problem": problem, "note": "skipped; said once"])
    }
}

/// Names a textfile gauge may not take: the fixed gauges' names in storage (`MetricLayout.fixed`
/// on the server) and the agent's own self-metrics, added after the collectors.
enum MetricKeys {
    static let fixed = ["cpu", "memory", "disk", "load1", "net_rx", "net_tx", "disk_read", "disk_write",
                        "agent_buffer_samples", "agent_buffer_dropped_total", "agent_samples_too_large_total"]
}
