"""Server ingest with each scorer, side by side (see Tools/bench-detect): the live temporal
detector (the default) against the plain forest and the static rule, on the fleet
simulation's samples (all eight gauges move, so every metric's forest is scored)."""
import argparse, os, statistics, sys

sys.path.insert(0, os.path.dirname(__file__))
from server_bench import Server, cpu_seconds, flood, peak_rss_mb  # noqa: E402


def run(bindir, server_cpu, client_cpu, scorer, connections, samples):
    os.environ["GRIDMON_SCORER"] = scorer  # the server reads its flags' environment twins
    server = Server(bindir, server_cpu, "none")
    try:
        before = cpu_seconds(server.proc.pid)
        r = flood(bindir, client_cpu, server.port, ["--mode", "fleet", "--batch", "64", "--connections", str(connections),
                                                    "--samples", str(samples), "--window", "4096"])
        used = cpu_seconds(server.proc.pid) - before
        rss = peak_rss_mb(server.proc.pid)
    finally:
        server.stop()
    assert r["samples_acked"] == samples, r
    return {"per_cpu_s": samples / used, "server_cpu": used, "rss": rss}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    server_cpu, client_cpu = os.cpu_count() - 1, 0
    scenarios = [(scorer, c, 2_000_000) for c in (1, 100) for scorer in ("temporal", "forest", "static")]
    results = {s: [] for s in scenarios}
    for i in range(a.runs):
        for s in scenarios:
            results[s].append(run(a.bin, server_cpu, client_cpu, *s))
            print(f"run {i + 1}/{a.runs} scorer={s[0]} connections={s[1]}: {results[s][-1]['per_cpu_s']:,.0f} samples per server CPU-second",
                  file=sys.stderr)
    print(f"Server: 1 reactor thread pinned to CPU {server_cpu}, --store none, 64-sample frames of the fleet simulation; "
          f"gridmon-flood pinned to CPU {client_cpu}; medians of {a.runs} interleaved runs.\n")
    print("| scorer | nodes | samples per server CPU-second | server CPU for 2 M samples | server peak RSS |")
    print("|---|---|---|---|---|")
    for s in scenarios:
        med = lambda k: statistics.median(r[k] for r in results[s])
        print(f"| {s[0]} | {s[1]} | {med('per_cpu_s'):,.0f} | {med('server_cpu'):.2f} s | {med('rss'):.0f} MB |")


if __name__ == "__main__":
    main()
