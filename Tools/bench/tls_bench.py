#!/usr/bin/env python3
"""TLS next to plain TCP on the agent port (see Tools/bench-tls); prints one table.

Release builds; the server pinned to one core with one reactor thread and `--store none`, the
client (gridmon-flood, openssl s_time) pinned to the other. Server CPU from /proc/PID/stat
around each run. Scenarios interleaved plain/TLS run by run; medians.
"""
import argparse, os, re, shutil, statistics, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(__file__))
from server_bench import Server, cpu_seconds, flood, peak_rss_mb  # noqa: E402


def make_certs(directory):
    def ssl(*args):
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)
    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=bench CA")
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    with open(os.path.join(directory, "san.ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    ssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem",
        "-days", "2", "-extfile", "san.ext")
    os.chmod(os.path.join(directory, "server.key"), 0o600)


def start_server(bindir, cpu, certs=None):
    """The server with `--store none`, over TLS when `certs` is given."""
    return Server(bindir, cpu, "none", ["--tls-cert", f"{certs}/server.pem", "--tls-key", f"{certs}/server.key"] if certs else [])


def throughput(bindir, server_cpu, client_cpu, certs, batch, connections, samples):
    server = start_server(bindir, server_cpu, certs)
    try:
        before = cpu_seconds(server.proc.pid)
        tls = ["--tls", "--tls-ca", f"{certs}/ca.pem"] if certs else []
        r = flood(bindir, client_cpu, server.port, ["--batch", str(batch), "--connections", str(connections),
                                                    "--samples", str(samples), "--window", str(max(batch, 4096))] + tls)
        used = cpu_seconds(server.proc.pid) - before
    finally:
        server.stop()
    assert r["samples_acked"] == samples, r
    return {"per_cpu_s": samples / used, "wall": r["samples_per_second"], "p99_us": r["ack_latency_us"]["p99"], "server_cpu": used}


def handshakes(bindir, server_cpu, client_cpu, certs, reuse, seconds):
    server = start_server(bindir, server_cpu, certs)
    try:
        before = cpu_seconds(server.proc.pid)
        # s_time's -reuse is TLS 1.2 session-id reuse (it does not wait for TLS 1.3 tickets).
        out = subprocess.run(["taskset", "-c", str(client_cpu), "openssl", "s_time", "-connect", f"127.0.0.1:{server.port}",
                              "-CAfile", f"{certs}/ca.pem", "-time", str(seconds)]
                             + (["-reuse", "-tls1_2"] if reuse else ["-new"]), capture_output=True, text=True).stdout
        used = cpu_seconds(server.proc.pid) - before
    finally:
        server.stop()
    m = re.search(r"(\d+) connections in [\d.]+ real seconds", out)
    count = int(m.group(1))
    return {"count": count, "per_s": count / seconds, "server_ms": 1000 * used / count}


def storm(bindir, server_cpu, client_cpu, certs, connections, seconds):
    server = start_server(bindir, server_cpu, certs)
    try:
        before = cpu_seconds(server.proc.pid)
        start = time.time()
        tls = ["--tls", "--tls-ca", f"{certs}/ca.pem"] if certs else []
        r = flood(bindir, client_cpu, server.port, ["--batch", "1", "--connections", str(connections), "--rate", "1",
                                                    "--samples", "0", "--duration", str(seconds), "--window", "16"] + tls)
        wall = time.time() - start
        used = cpu_seconds(server.proc.pid) - before
        rss = peak_rss_mb(server.proc.pid)
    finally:
        server.stop()
    return {"acked": r["samples_acked"], "server_cpu": used, "wall": wall, "rss": rss, "errors": r["errors"],
            "handshake_ms": r.get("tls", {}).get("mean_us", 0) / 1000, "p99_ms": r["ack_latency_us"].get("p99", 0) / 1000}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--storm-seconds", type=int, default=20)
    a = ap.parse_args()
    certs = tempfile.mkdtemp(prefix="gridmon-tls-bench-certs-")
    make_certs(certs)
    server_cpu, client_cpu = os.cpu_count() - 1, 0
    scenarios = [(batch, c, 3_000_000 if batch == 64 else 600_000) for batch in (64, 1) for c in (1, 100)]
    results = {(s, t): [] for s in scenarios for t in ("plain", "tls")}
    for run in range(a.runs):
        for s in scenarios:
            for t in ("plain", "tls"):
                results[(s, t)].append(throughput(a.bin, server_cpu, client_cpu, certs if t == "tls" else None, *s))
                print(f"run {run + 1}/{a.runs} {t} batch={s[0]} connections={s[1]}: "
                      f"{results[(s, t)][-1]['per_cpu_s']:,.0f} samples per server CPU-second", file=sys.stderr)
    med = lambda rs, k: statistics.median(r[k] for r in rs)  # noqa: E731
    print(f"Server: 1 reactor thread pinned to CPU {server_cpu}, --store none; gridmon-flood pinned to CPU {client_cpu}; "
          f"medians of {a.runs} interleaved runs.\n")
    print("| frame | connections | plain: samples per server CPU-s | TLS: samples per server CPU-s | TLS cost | plain wall samples/s | TLS wall samples/s | TLS p99 ack |")
    print("|---|---|---|---|---|---|---|---|")
    for s in scenarios:
        p, t = results[(s, "plain")], results[(s, "tls")]
        cost = 1 - med(t, "per_cpu_s") / med(p, "per_cpu_s")
        print(f"| {s[0]}-sample | {s[1]} | {med(p, 'per_cpu_s'):,.0f} | {med(t, 'per_cpu_s'):,.0f} | {100 * cost:.0f} % | "
              f"{med(p, 'wall'):,.0f} | {med(t, 'wall'):,.0f} | {med(t, 'p99_us') / 1000:.1f} ms |")
    full = [handshakes(a.bin, server_cpu, client_cpu, certs, False, 5) for _ in range(a.runs)]
    resumed = [handshakes(a.bin, server_cpu, client_cpu, certs, True, 5) for _ in range(a.runs)]
    print(f"\nHandshakes (openssl s_time, 5 s each, RSA-2048 certificate, medians): full TLS 1.3 {med(full, 'per_s'):,.0f}/s at "
          f"{med(full, 'server_ms'):.3f} ms of server CPU each; resumed (TLS 1.2 session id) {med(resumed, 'per_s'):,.0f}/s at "
          f"{med(resumed, 'server_ms'):.3f} ms each")
    for t in ("plain", "tls"):
        r = storm(a.bin, server_cpu, client_cpu, certs if t == "tls" else None, 10_000, a.storm_seconds)
        print(f"10,000 agents connecting at once ({t}), 1 sample/s each for {a.storm_seconds} s: {r['acked']:,} samples acked, "
              f"server CPU {r['server_cpu']:.2f} s, peak RSS {r['rss']:.0f} MB, p99 ack {r['p99_ms']:.1f} ms"
              + (f", mean handshake {r['handshake_ms']:.1f} ms (client wall)" if t == "tls" else "") + f"; errors {r['errors']}")
    shutil.rmtree(certs, ignore_errors=True)


if __name__ == "__main__":
    main()
