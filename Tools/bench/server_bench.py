#!/usr/bin/env python3
"""Runs gridmon-stream-server under gridmon-flood load and prints one table (see Tools/bench-server).

Server CPU comes from /proc/PID/stat (utime+stime) around each run; the flood client's
from its rusage. Throughput runs are interleaved scenario by scenario and reported as medians.
"""
import argparse, json, os, re, shutil, socket, statistics, subprocess, sys, tempfile, threading, time, urllib.request

CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def cpu_seconds(pid):
    return sum(cpu_split(pid))


def cpu_seconds_exact(pid):
    """CPU seconds of a process's live threads so far, to the nanosecond (/proc/PID/task/*/schedstat,
    first field: time on a CPU). /proc/PID/stat counts in 10 ms ticks, too coarse for runs of ~0.1 s of
    server CPU; threads that exited are not counted, so use it across a run of long-lived threads."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            total += int(open(f"/proc/{pid}/task/{task}/schedstat").read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total / 1e9


def cpu_split(pid):
    """(user, system) CPU seconds of a process so far."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def peak_rss_mb(pid):
    m = re.search(r"VmHWM:\s+(\d+) kB", open(f"/proc/{pid}/status").read())
    return int(m.group(1)) / 1024


class Influx:
    """A local influxd 1.6.7 in a temporary directory (for the `influx` store)."""
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="gridmon-bench-influx-")
        self.port = free_port()
        env = dict(os.environ, INFLUXDB_HTTP_BIND_ADDRESS=f"127.0.0.1:{self.port}", INFLUXDB_BIND_ADDRESS=f"127.0.0.1:{free_port()}",
                   INFLUXDB_META_DIR=f"{self.dir}/meta", INFLUXDB_DATA_DIR=f"{self.dir}/data", INFLUXDB_DATA_WAL_DIR=f"{self.dir}/wal",
                   INFLUXDB_REPORTING_DISABLED="true", INFLUXDB_HTTP_LOG_ENABLED="false", INFLUXDB_DATA_QUERY_LOG_ENABLED="false")
        self.proc = subprocess.Popen(["influxd"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        shutil.rmtree(self.dir, ignore_errors=True)


class Server:
    def __init__(self, bindir, cpu, store, extra_args=()):
        self.port = free_port()
        self.admin = free_port()
        self.data = tempfile.mkdtemp(prefix="gridmon-bench-")
        self.influx = Influx() if store == "influx" else None
        extra = ["--store", "outbox", "--influx-url", f"http://127.0.0.1:{self.influx.port}", "--influx-create"] \
            if self.influx else ["--store", store]
        self.proc = subprocess.Popen(
            ["taskset", "-c", str(cpu), f"{bindir}/gridmon-stream-server", "--insecure-no-auth", "--threads", "1",
             "--listen", f"127.0.0.1:{self.port}", "--admin-listen", f"127.0.0.1:{self.admin}", "--log-level", "warn",
             # every flood connection comes from 127.0.0.1: lift the per-address bound on connections
             # that have not sent Hello yet (a 10,000-connection storm is many at once)
             "--max-connections", "20000", "--max-unauthenticated-per-ip", "20000",
             "--keepalive-ms", "0", "--data-dir", self.data] + extra + list(extra_args),
            stderr=subprocess.DEVNULL)
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.02)

    def metric(self, name):
        """A value of the server's /metrics (admin port), or None."""
        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{self.admin}/metrics", timeout=5).read().decode()
        except OSError:
            return None
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        shutil.rmtree(self.data, ignore_errors=True)
        if self.influx:
            self.influx.stop()


def flood(bindir, cpu, port, args):
    cmd = ["taskset", "-c", str(cpu), f"{bindir}/gridmon-flood", "--target", f"127.0.0.1:{port}", "--json", "--quiet"] + args
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    report = json.loads(out)
    report["client_cpu"] = usage.ru_utime + usage.ru_stime
    return report


def throughput(bindir, server_cpu, client_cpu, store, batch, connections, samples):
    server = Server(bindir, server_cpu, store)
    try:
        before = cpu_seconds(server.proc.pid)
        # With the outbox, acks come after each group commit (100 ms): keep enough in flight per
        # stream to cover that, or the window, not the server, sets the pace.
        window = max(batch, 4096) if store == "none" else max(batch, 2_000_000 // connections)
        r = flood(bindir, client_cpu, server.port, ["--batch", str(batch), "--connections", str(connections),
                                                    "--samples", str(samples), "--window", str(window)])
        used = cpu_seconds(server.proc.pid) - before
        rss = peak_rss_mb(server.proc.pid)
    finally:
        server.stop()
    assert r["samples_acked"] == samples, r
    return {"per_cpu_s": samples / used, "wall": r["samples_per_second"], "p99_us": r["ack_latency_us"]["p99"],
            "server_cpu": used, "client_cpu": r["client_cpu"], "rss": rss}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--idle-seconds", type=int, default=60)
    ap.add_argument("--idle-only", action="store_true", help="only the 10,000-connection run (and the fsync probe)")
    ap.add_argument("--commit-delays", default="0,2,100", help="--commit-delay-ms values compared in the 10,000-connection run")
    ap.add_argument("--idle-store", default="outbox", choices=("outbox", "none"),
                    help="the 10,000-connection run's store (none: no commits, each ack leaves at once; what one read and one send per frame cost)")
    ap.add_argument("--idle-scorer", default="temporal", choices=("temporal", "forest", "static"),
                    help="the 10,000-connection run's --scorer (default the server's: temporal, every node learning for its "
                         "first 300 samples, longer than the run; forest: every sample judged by the built-in model)")
    ap.add_argument("--base-bin", help="also run this build's server in the 10,000-connection run, interleaved (bench-server's "
                                       "GRIDMON_BENCH_SERVER_BASE)")
    ap.add_argument("--base-name", default="base")
    ap.add_argument("--idle-extra-gauges", type=int, default=0,
                    help="named gauges in every sample of the 10,000-connection run besides the fixed eight, shaped like the "
                         "agent's (gridmon-flood --extra-gauges; the agent with every input sends 42)")
    ap.add_argument("--judged", action="store_true",
                    help="the 10,000-connection run on the default temporal scorer with every node judged by its own detector "
                         "(the fleet simulation first runs at 1 sample/s per node until all 10,000 detectors are fit: 8-10 minutes), "
                         "fleet samples (all eight gauges move) throughout: the fleet's steady state after its first minutes")
    a = ap.parse_args()
    # The table in the README is the plain forest's; Tools/bench-detect compares the scorers.
    os.environ.setdefault("GRIDMON_SCORER", "forest")
    ncpu = os.cpu_count()
    server_cpu, client_cpu = ncpu - 1, 0
    stores = ("none", "outbox", "influx")
    scenarios = [(store, 64, c, 5_000_000) for c in (1, 100, 10_000) for store in stores] \
        + [(store, 1, c, 2_000_000) for c in (1, 100, 10_000) for store in stores]
    results = {s: [] for s in scenarios}
    if a.idle_only:
        scenarios, results = [], {}
    for run in range(a.runs if scenarios else 0):
        for s in scenarios:
            results[s].append(throughput(a.bin, server_cpu, client_cpu, *s))
            print(f"run {run + 1}/{a.runs} store={s[0]} batch={s[1]} connections={s[2]}: "
                  f"{results[s][-1]['per_cpu_s']:,.0f} samples per server CPU-second", file=sys.stderr)
    print(f"Server: 1 reactor thread pinned to CPU {server_cpu}; gridmon-flood pinned to CPU {client_cpu}; "
          f"medians of {a.runs} interleaved runs.\n")
    print(fsync_probe())
    if not scenarios:
        return idle(a, server_cpu, client_cpu)
    print(f"| store | frame | connections | samples/s per reactor thread (per server CPU-s) | frames/s per thread | wall samples/s | p99 ack latency | server CPU | server peak RSS | flood CPU |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for s in scenarios:
        rs = results[s]
        med = lambda k: statistics.median(r[k] for r in rs)
        print(f"| {s[0]} | {s[1]}-sample | {s[2]} | {med('per_cpu_s'):,.0f} | {med('per_cpu_s') / s[1]:,.0f} | {med('wall'):,.0f} | "
              f"{med('p99_us') / 1000:.1f} ms | {med('server_cpu'):.2f} s | {med('rss'):.0f} MB | {med('client_cpu'):.2f} s |")

    idle(a, server_cpu, client_cpu)


def fsync_probe():
    """fdatasync latency of a 4 KiB write on the filesystem the outbox uses (the floor of an ack):
    appended (the file grows: its size is written too) and over zeros laid down ahead, as the
    outbox writes its records (only data is written)."""
    d = tempfile.mkdtemp(prefix="gridmon-bench-fsync-")
    out = ""
    for how in ("an append", "a write over zeros"):
        fd = os.open(f"{d}/probe", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        if how != "an append":
            os.write(fd, bytes(300 * 4096))
            os.fdatasync(fd)
            os.lseek(fd, 0, os.SEEK_SET)
        times = []
        for _ in range(300):
            os.write(fd, b"x" * 4096)
            t = time.perf_counter()
            os.fdatasync(fd)
            times.append((time.perf_counter() - t) * 1000)
        os.close(fd)
        times.sort()
        out += (f"fdatasync of {how} of 4 KiB here: median {statistics.median(times):.2f} ms, "
                f"p99 {times[int(0.99 * len(times))]:.2f} ms\n")
    shutil.rmtree(d, ignore_errors=True)
    return out


def idle(a, server_cpu, client_cpu):
    """10,000 connections, one 1-sample frame per second each, for each --commit-delay-ms,
    interleaved run by run; medians."""
    delays = [int(d) for d in a.commit_delays.split(",")] if a.idle_store == "outbox" else ["-"]
    builds = [("working tree", a.bin)] + ([(a.base_name, a.base_bin)] if a.base_bin else [])
    rows = {(b, d): [] for b, _ in builds for d in delays}
    workload = []
    # main() sets forest for the throughput tables; this run takes its own (temporal when judged).
    os.environ["GRIDMON_SCORER"] = "temporal" if a.judged else a.idle_scorer
    if a.judged:
        workload = ["--mode", "fleet", "--incident-rate", "0"]
    if a.idle_extra_gauges:
        workload += ["--extra-gauges", str(a.idle_extra_gauges)]
    for run in range(a.runs):
        for d in delays:
            for build, bindir in builds:
                server = Server(bindir, server_cpu, a.idle_store, ["--commit-delay-ms", str(d)] if d != "-" else [])
                try:
                    if a.judged:
                        took = judge_every_node(a.bin, client_cpu, server, workload)
                        print(f"run {run + 1}/{a.runs}: every node judged after {took:.0f} s of warm-up", file=sys.stderr)
                    fits0 = server.metric("gridmon_detector_fits_total") or 0
                    commits0 = server.metric("gridmon_sink_commit_seconds_count") or 0
                    commit_s0 = server.metric("gridmon_sink_commit_seconds_sum") or 0
                    before = cpu_seconds(server.proc.pid)
                    start = time.time()
                    # The steady state apart from the whole run: CPU between 40 % and 90 % of it, once
                    # the 10,000 connections are open and their nodes known.
                    steady = []
                    def probe():
                        for at in (0.4, 0.9):
                            time.sleep(max(0.0, start + at * a.idle_seconds - time.time()))
                            steady.append((time.time(), *cpu_split(server.proc.pid)))
                    prober = threading.Thread(target=probe)
                    prober.start()
                    r = flood(a.bin, client_cpu, server.port, workload + ["--batch", "1", "--connections", "10000", "--rate", "1",
                                                               "--samples", "0", "--duration", str(a.idle_seconds), "--window", "16",
                                                               "--latency-after", str(0.4 * a.idle_seconds)])
                    prober.join()
                    wall = time.time() - start
                    used = cpu_seconds(server.proc.pid) - before
                    rss = peak_rss_mb(server.proc.pid)
                    fits = (server.metric("gridmon_detector_fits_total") or 0) - fits0
                    commits = (server.metric("gridmon_sink_commit_seconds_count") or 0) - commits0
                    commit_ms = 1000 * ((server.metric("gridmon_sink_commit_seconds_sum") or 0) - commit_s0) / max(commits, 1)
                finally:
                    server.stop()
                lat = r["ack_latency_us"]
                later = r["ack_latency_after_us"]
                rows[(build, d)].append({"acked": r["samples_acked"], "p50": lat["p50"] / 1000, "p99": lat["p99"] / 1000,
                                "p999": lat["p99.9"] / 1000, "later_p50": later["p50"] / 1000, "later_p99": later["p99"] / 1000,
                                "later_p999": later["p99.9"] / 1000, "cpu": 100 * used / wall,
                                "steady_cpu": 100 * (steady[1][1] + steady[1][2] - steady[0][1] - steady[0][2]) / (steady[1][0] - steady[0][0]),
                                "steady_user": 100 * (steady[1][1] - steady[0][1]) / (steady[1][0] - steady[0][0]),
                                "steady_sys": 100 * (steady[1][2] - steady[0][2]) / (steady[1][0] - steady[0][0]),
                                "flood_cpu": 100 * r["client_cpu"] / wall,
                                "rss": rss, "errors": r["errors"], "commit_ms": commit_ms, "commits": commits / wall})
                last = rows[(build, d)][-1]
                print(f"run {run + 1}/{a.runs} idle ({a.idle_store}, {build}) commit-delay {d} ms: p99 {last['p99']:.2f} ms "
                      f"(steady {last['later_p99']:.2f} ms), "
                      f"server CPU {last['cpu']:.1f}% (steady {last['steady_cpu']:.1f}%), {fits:.0f} detector fits during it",
                      file=sys.stderr)
    judged = ", every node judged by its own detector (fleet samples)" if a.judged else ""
    judged += f", {a.idle_extra_gauges} extra gauges per sample" if a.idle_extra_gauges else ""
    scorer = "" if a.judged else f", --scorer {a.idle_scorer}"
    print(f"({a.idle_store} store{scorer}{judged}) 10,000 connections x 1 sample/s for {a.idle_seconds} s, medians of {a.runs} interleaved runs:\n")
    print("Steady state: frames sent from 40 % of the run on (ack latency), CPU between 40 % and 90 % of it.\n")
    print("| server | --commit-delay-ms | samples acked | ack p50 / p99 / p99.9, whole run | steady state | mean commit (write + fdatasync) | commits/s | server CPU (% of a core) | steady state | of which user / kernel | server peak RSS | flood CPU |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for (build, d), got in rows.items():
        med = lambda k: statistics.median(x[k] for x in got)
        print(f"| {build} | {d} | {med('acked'):,.0f} | {med('p50'):.2f} / {med('p99'):.2f} / {med('p999'):.2f} ms | "
              f"{med('later_p50'):.2f} / {med('later_p99'):.2f} / {med('later_p999'):.2f} ms | {med('commit_ms'):.2f} ms | {med('commits'):,.0f} | "
              f"{med('cpu'):.1f} % | {med('steady_cpu'):.1f} % | {med('steady_user'):.1f} / {med('steady_sys'):.1f} % | "
              f"{med('rss'):.0f} MB | {med('flood_cpu'):.1f} % |")

def judge_every_node(bindir, client_cpu, server, workload, nodes=10_000, limit=1200):
    """Runs the flood (`workload`) at 1 sample/s per node, as a fleet's first minutes go
    (300 samples of learning, then ~13 ms of fitting per node on the server's trainer
    thread), until every node's own detector is fit (the server's
    gridmon_detector_fits_total reaches `nodes`), then stops it. Returns the seconds it took.
    Slow enough that the nodes' first refits (about 2,350 samples in) stay well clear of the
    measured run."""
    cmd = ["taskset", "-c", str(client_cpu), f"{bindir}/gridmon-flood", "--target", f"127.0.0.1:{server.port}", "--quiet"] + workload \
        + ["--batch", "1", "--connections", str(nodes), "--rate", "1", "--samples", "0", "--duration", str(limit), "--window", "16"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    start = time.time()
    fits = 0
    try:
        while proc.poll() is None and fits < nodes:
            time.sleep(5)
            fits = server.metric("gridmon_detector_fits_total") or 0
    finally:
        # SIGTERM: a background job's SIGINT may be ignored (a non-interactive shell sets it so).
        proc.terminate()
        proc.wait(timeout=60)
    if fits < nodes:
        sys.exit(f"only {fits:.0f} of {nodes} nodes' detectors fit within {limit} s")
    return time.time() - start


if __name__ == "__main__":
    main()
