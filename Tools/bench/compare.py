"""Server ingest of two builds side by side (see Tools/bench-compare): samples per server CPU-second."""
import argparse, json, os, shutil, socket, statistics, subprocess, sys, tempfile, time

CASES = [("outbox", 64, 2_000_000), ("none", 64, 4_000_000), ("outbox", 1, 400_000)]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one(bindir, flood, store, batch, samples):
    port, data = free_port(), tempfile.mkdtemp()
    server = subprocess.Popen(["taskset", "-c", "0", f"{bindir}/gridmon-stream-server", "--insecure-no-auth", "--threads", "1",
                               "--listen", f"127.0.0.1:{port}", "--admin-listen", "off", "--log-level", "warn", "--store", store,
                               "--keepalive-ms", "0", "--node-warmup", "0", "--data-dir", data], stderr=subprocess.DEVNULL)
    try:
        for _ in range(250):
            try:
                socket.create_connection(("127.0.0.1", port)).close()
                break
            except OSError:
                time.sleep(0.02)
        before = cpu_seconds(server.pid)
        # With the outbox, acks follow each 100 ms group commit: keep enough in flight that the
        # window, not the server, never sets the pace.
        window = max(batch, 4096) if store == "none" else 2_000_000
        run = subprocess.run(["taskset", "-c", "1", flood, "--target", f"127.0.0.1:{port}", "--json", "--quiet",
                              "--batch", str(batch), "--connections", "1", "--samples", str(samples), "--window", str(window)],
                             capture_output=True, text=True, timeout=300)
        used = cpu_seconds(server.pid) - before
        report = json.loads(run.stdout)
        assert report["samples_acked"] == samples, report
        return samples / used
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(data, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--base-name", default="base")
    ap.add_argument("--head", required=True)
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    flood = f"{a.head}/gridmon-flood"
    builds = {a.base_name: a.base, "working tree": a.head}
    results = {}
    for run in range(a.runs):
        for case in CASES:
            for name, bindir in builds.items():
                rate = one(bindir, flood, *case)
                results.setdefault((case, name), []).append(rate)
                print(f"run {run + 1}/{a.runs} {case[0]} {case[1]}-sample {name}: {rate:,.0f}", file=sys.stderr, flush=True)
    print(f"Server pinned to CPU 0 (1 reactor thread), gridmon-flood to CPU 1; medians of {a.runs} interleaved runs; "
          "samples per server CPU-second.\n")
    print(f"| store | frame | {' | '.join(builds)} | change |")
    print("|---|---|---|---|---|")
    for case in CASES:
        medians = [statistics.median(results[(case, name)]) for name in builds]
        print(f"| {case[0]} | {case[1]}-sample | {' | '.join(f'{m:,.0f}' for m in medians)} | {medians[1] / medians[0] - 1:+.0%} |")


if __name__ == "__main__":
    main()
