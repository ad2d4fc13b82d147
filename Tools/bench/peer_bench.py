"""GridMon against a gRPC peer in one run (issue #17, item 4; see Tools/bench-server --peer).

Both servers get the same work: SampleBatch frames (64 samples, and 1) of GridMon's codec, decoded and
judged by the static rule, acked per frame; no store. GridMon: gridmon-stream-server
`--store none --scorer static`, one reactor thread, loaded by gridmon-flood. gRPC:
`grpc-peer serve` (grpc-swift-2 over SwiftNIO's HTTP/2, one event-loop thread), loaded by
`grpc-peer load`. Each server is pinned to one core and its client to the other; one
connection per stream (as one agent each); the same window of 4,096 unacknowledged samples
per stream. Runs interleave GridMon and gRPC scenario by scenario; medians are printed.
"""
import argparse, json, os, statistics, subprocess, sys, time

sys.path.insert(0, os.path.dirname(__file__))
from server_bench import Server, cpu_seconds_exact, free_port, peak_rss_mb  # noqa: E402

WINDOW = 4096


def client(cmd):
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    assert status == 0, (cmd, status, out)
    report = json.loads(out)
    return report, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def gridmon(bindir, server_cpu, client_cpu, batch, connections, samples):
    os.environ["GRIDMON_SCORER"] = "static"
    server = Server(bindir, server_cpu, "none")
    try:
        before = cpu_seconds_exact(server.proc.pid)
        report, ccpu, crss = client(["taskset", "-c", str(client_cpu), f"{bindir}/gridmon-flood", "--target", f"127.0.0.1:{server.port}",
                                     "--json", "--quiet", "--batch", str(batch), "--connections", str(connections),
                                     "--samples", str(samples), "--window", str(WINDOW)])
        used = cpu_seconds_exact(server.proc.pid) - before
        rss = peak_rss_mb(server.proc.pid)
    finally:
        server.stop()
    assert report["samples_acked"] == samples, report
    return {"per_cpu_s": samples / used, "p99_us": report["ack_latency_us"]["p99"], "rss": rss, "client_rss": crss, "client_cpu": ccpu}


def grpc(peer, server_cpu, client_cpu, batch, connections, samples):
    port = free_port()
    server = subprocess.Popen(["taskset", "-c", str(server_cpu), f"{peer}/grpc-peer", "serve", "--port", str(port), "--threads", "1"],
                              stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        before = cpu_seconds_exact(server.pid)
        report, ccpu, crss = client(["taskset", "-c", str(client_cpu), f"{peer}/grpc-peer", "load", "--port", str(port),
                                     "--connections", str(connections), "--samples", str(samples), "--batch", str(batch),
                                     "--window", str(WINDOW)])
        used = cpu_seconds_exact(server.pid) - before
        rss = peak_rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert report["samples_acked"] == samples, report
    return {"per_cpu_s": samples / used, "p99_us": report["ack_latency_us"]["p99"], "rss": rss, "client_rss": crss, "client_cpu": ccpu}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--peer", required=True, help="directory of the grpc-peer binary")
    ap.add_argument("--runs", type=int, default=3)
    # 8,000,000 at 64 samples a frame: GridMon then spends ~0.4 s of CPU a run, the peer ~2-4 s.
    ap.add_argument("--samples", type=int, default=8_000_000)
    a = ap.parse_args()
    server_cpu, client_cpu = os.cpu_count() - 1, 0
    # 64-sample frames (an agent catching up, the flood's default) and 1-sample frames (an agent
    # at its 1 s interval: what a fleet sends), each through 1, 100 and 1,000 streams.
    scenarios = [(kind, batch, c) for batch in (64, 1) for c in (1, 100, 1000) for kind in ("GridMon", "gRPC")]
    samples = {64: a.samples, 1: a.samples // 16}
    results = {s: [] for s in scenarios}
    for run in range(a.runs):
        for kind, batch, c in scenarios:
            r = (gridmon(a.bin, server_cpu, client_cpu, batch, c, samples[batch]) if kind == "GridMon"
                 else grpc(a.peer, server_cpu, client_cpu, batch, c, samples[batch]))
            results[(kind, batch, c)].append(r)
            print(f"run {run + 1}/{a.runs} {kind} frame={batch} streams={c}: {r['per_cpu_s']:,.0f} samples per server CPU-second, "
                  f"p99 {r['p99_us'] / 1000:.1f} ms", file=sys.stderr)
    print(f"Same frames (GridMon's codec), static rule, no store; one connection per stream, {WINDOW} samples in flight "
          f"per stream; server pinned to CPU {server_cpu} (one thread), client to CPU {client_cpu}; {samples[64]:,} samples "
          f"per run in 64-sample frames, {samples[1]:,} in 1-sample frames; server CPU from /proc/PID/task/*/schedstat; "
          f"medians of {a.runs} interleaved runs.\n")
    print("| frame | streams | server | samples per server CPU-second | p99 ack latency | server peak RSS | client peak RSS | client CPU |")
    print("|---|---|---|---|---|---|---|---|")
    for kind, batch, c in scenarios:
        med = lambda k: statistics.median(r[k] for r in results[(kind, batch, c)])
        print(f"| {batch} | {c:,} | {kind} | {med('per_cpu_s'):,.0f} | {med('p99_us') / 1000:.1f} ms | {med('rss'):.0f} MB | "
              f"{med('client_rss'):.0f} MB | {med('client_cpu'):.2f} s |")
    print()
    for batch in (64, 1):
        for c in (1, 100, 1000):
            g = statistics.median(r["per_cpu_s"] for r in results[("GridMon", batch, c)])
            p = statistics.median(r["per_cpu_s"] for r in results[("gRPC", batch, c)])
            print(f"{batch}-sample frames, {c:,} streams: GridMon {g / p:.1f}× the samples per server CPU-second of the gRPC peer")


if __name__ == "__main__":
    main()
