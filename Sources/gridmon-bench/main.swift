// gridmon-bench: release-build micro-benchmarks, driven by the Tools/bench-* scripts.
//
//   gridmon-bench codec [--rounds N] [--millis M]
//   gridmon-bench forest --model M.gmf --data TEST.csv --train TRAIN.csv [--rounds N]
//   gridmon-bench detectors [--nodes N] [--warmup W] [--extra-gauges N] [--trees T] [--rounds N]
//
// Prints one line per measurement: `swift <case> ns_per_op=<median CPU ns> ops=<count>`,
// the same format as Tools/bench/codec_baseline.c, so a script can put both side by side.
import Glibc
import GridMonCore
import GridMonFlood

let usage = """
    usage: gridmon-bench codec [--rounds N] [--millis M]
           gridmon-bench forest --model M.gmf --data TEST.csv --train TRAIN.csv [--rounds N]
           gridmon-bench detectors [--nodes N] [--warmup W] [--extra-gauges N] [--trees T] [--rounds N]
           gridmon-bench --version
    Release-build micro-benchmarks (run by Tools/bench-codec, Tools/bench-forest and Tools/bench-detect --bank). Prints
    `swift <case> ns_per_op=<median CPU ns> ops=<count>` per measurement.
    Exit codes: 0 done, 2 bad arguments.

    """

let arguments = Array(CommandLine.arguments.dropFirst())
guard let command = arguments.first else {
    fputs(usage)
    exit(2)
}
if command == "--help" || command == "-h" || command == "help" {
    print(usage, terminator: "")
    exit(0)
}
if command == "--version" {
    print(BuildInfo.versionLine("gridmon-bench"))
    exit(0)
}
var rounds = 7
var millis = 300
var options: [String: String] = [:]
var i = 1
while i < arguments.count {
    switch arguments[i] {
    case "--rounds" where i + 1 < arguments.count: rounds = Int(arguments[i + 1]) ?? rounds; i += 2
    case "--millis" where i + 1 < arguments.count: millis = Int(arguments[i + 1]) ?? millis; i += 2
    case let flag where flag.hasPrefix("--") && i + 1 < arguments.count: options[String(flag.dropFirst(2))] = arguments[i + 1]; i += 2
    default: fputs("gridmon-bench: unknown argument \(arguments[i])\n"); exit(2)
    }
}

switch command {
case "codec": CodecBenchmark(rounds: rounds, millis: millis).run()
case "forest":
    ForestBenchmark(rounds: rounds, model: options["model"] ?? "", data: options["data"] ?? "", train: options["train"] ?? "").run()
case "detectors":
    DetectorBenchmark(rounds: rounds, nodes: Int(options["nodes"] ?? "") ?? 2000, warmup: Int(options["warmup"] ?? "") ?? 300,
                      extraGauges: min(max(Int(options["extra-gauges"] ?? "") ?? 0, 0), AgentGauges.maxCount),
                      trees: min(max(Int(options["trees"] ?? "") ?? 16, 1), 100)).run()
default:
    fputs("gridmon-bench: unknown benchmark '\(command)'\n" + usage)
    exit(2)
}

func fputs(_ text: String) {
    var text = text
    text.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}
