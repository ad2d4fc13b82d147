#!/usr/bin/env python3
"""The agent's cost and its backlog drain (see Tools/bench-agent); prints one table.

1. Steady state, side by side in one run: gridmon-agent at 1 sample/s with every input
   (textfile included) streaming to a release server, and prometheus-node-exporter scraped
   once a second, both pinned to the same core, for the same wall time. CPU from
   /proc/PID/stat (utime+stime), peak RSS from VmHWM; bytes on the wire per sample from the
   server's own counters (bytes_received_total / samples_accepted_total).
2. Backlog drain: an hour of samples (3,600) is written to a disk buffer with the server
   away (taken at 10 ms to save the hour), then the agent restarts at 1 s with the server
   back: the time until the server holds the whole backlog, with live samples flowing on.
"""
import argparse, os, re, shutil, subprocess, sys, tempfile, time, urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from server_bench import cpu_seconds, free_port, peak_rss_mb  # noqa: E402


def private_mb(pid):
    """Anonymous resident memory (RssAnon): the process's own, without shared library pages."""
    return int(re.search(r"RssAnon:\s+(\d+) kB", open(f"/proc/{pid}/status").read()).group(1)) / 1024


def metric(admin, name):
    text = urllib.request.urlopen(f"http://{admin}/metrics", timeout=5).read().decode()
    m = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def node_durable(admin, node):
    import json
    nodes = json.load(urllib.request.urlopen(f"http://{admin}/api/v1/nodes", timeout=5))
    return next((n["durable_seq"] for n in nodes if n["node"] == node), 0)


class Server:
    def __init__(self, bindir, cpu):
        self.port, self.admin_port = free_port(), free_port()
        self.data = tempfile.mkdtemp(prefix="gridmon-agent-bench-")
        self.proc = subprocess.Popen(
            ["taskset", "-c", str(cpu), f"{bindir}/gridmon-stream-server", "--insecure-no-auth", "--threads", "1",
             "--listen", f"127.0.0.1:{self.port}", "--admin-listen", f"127.0.0.1:{self.admin_port}", "--data-dir", self.data],
            stderr=subprocess.DEVNULL)
        self.admin = f"127.0.0.1:{self.admin_port}"
        for _ in range(200):
            try:
                urllib.request.urlopen(f"http://{self.admin}/healthz", timeout=1)
                return
            except OSError:
                time.sleep(0.05)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        shutil.rmtree(self.data, ignore_errors=True)


def agent(bindir, cpu, args):
    return subprocess.Popen(["taskset", "-c", str(cpu), f"{bindir}/gridmon-agent", *args], stderr=subprocess.DEVNULL)


def steady(bindir, seconds, agent_cpu, server_cpu):
    textfile = tempfile.mkdtemp(prefix="gridmon-agent-bench-textfile-")
    with open(os.path.join(textfile, "app.prom"), "w") as f:
        f.write("".join(f"app_gauge_{i} {i}\n" for i in range(10)))
    server = Server(bindir, server_cpu)
    a = agent(bindir, agent_cpu, ["--server", f"127.0.0.1:{server.port}", "--node-id", "bench", "--interval", "1s",
                                  "--per-cpu", "true", "--textfile-dir", textfile])
    exporter = None
    if shutil.which("prometheus-node-exporter"):
        exporter_port = free_port()
        exporter = subprocess.Popen(["taskset", "-c", str(agent_cpu), "prometheus-node-exporter",
                                     f"--web.listen-address=127.0.0.1:{exporter_port}"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(2)
    a0 = cpu_seconds(a.pid)
    e0 = cpu_seconds(exporter.pid) if exporter else 0
    start = time.time()
    scraped = 0
    while time.time() - start < seconds:
        if exporter:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{exporter_port}/metrics", timeout=2).read()
                scraped += 1
            except OSError:
                pass
        time.sleep(max(0, 1 - ((time.time() - start) % 1)))
    wall = time.time() - start
    rows = {"agent_cpu_pct": 100 * (cpu_seconds(a.pid) - a0) / wall, "agent_rss_mb": peak_rss_mb(a.pid),
            "agent_private_mb": private_mb(a.pid),
            "bytes_per_sample": metric(server.admin, "gridmon_bytes_received_total")
            / max(1, metric(server.admin, "gridmon_samples_accepted_total")),
            "wall": wall}
    if exporter:
        rows["exporter_cpu_pct"] = 100 * (cpu_seconds(exporter.pid) - e0) / wall
        rows["exporter_rss_mb"] = peak_rss_mb(exporter.pid)
        rows["exporter_private_mb"] = private_mb(exporter.pid)
        rows["scrapes"] = scraped
        exporter.terminate()
    once = subprocess.run([f"{bindir}/gridmon-agent", "--once", "--interval", "200ms", "--per-cpu", "true",
                           "--textfile-dir", textfile], capture_output=True, text=True)
    import json
    rows["gauges"] = len(json.loads(once.stdout)["gauges"])
    a.terminate()
    a.wait(timeout=30)
    server.stop()
    shutil.rmtree(textfile, ignore_errors=True)
    return rows


def drain(bindir, agent_cpu, server_cpu, backlog):
    buffer = tempfile.mkdtemp(prefix="gridmon-agent-bench-buffer-")
    log = os.path.join(buffer, "agent.log")
    # The server is away: the agent keeps every sample on disk (10 ms apart, to save the hour).
    with open(log, "w") as err:
        a = subprocess.Popen(["taskset", "-c", str(agent_cpu), f"{bindir}/gridmon-agent", "--server", f"127.0.0.1:{free_port()}",
                              "--node-id", "drain", "--interval", "10ms", "--buffer-dir", os.path.join(buffer, "b"),
                              "--connect-timeout", "1s"], stderr=err)
        time.sleep(backlog * 0.0125 + 1.5)  # a 10 ms interval runs ~12 ms apart with every input
        a.terminate()
        a.wait(timeout=30)
    held_on_disk = int(re.search(r"event=agent_stopped .*unacked=(\d+)", open(log).read()).group(1))
    disk_bytes = sum(os.path.getsize(os.path.join(buffer, "b", "log", f)) for f in os.listdir(os.path.join(buffer, "b", "log")))
    server = Server(bindir, server_cpu)
    start = time.time()
    a = agent(bindir, agent_cpu, ["--server", f"127.0.0.1:{server.port}", "--node-id", "drain", "--interval", "1s",
                                  "--buffer-dir", os.path.join(buffer, "b")])
    a0 = cpu_seconds(a.pid)
    held = 0
    while time.time() - start < 120:
        # A fresh buffer is numbered after the server's (empty) record of the node: 1...N.
        held = node_durable(server.admin, "drain")
        if held >= held_on_disk:
            break
        time.sleep(0.01)
    took = time.time() - start
    cpu = cpu_seconds(a.pid) - a0
    time.sleep(3)
    live = node_durable(server.admin, "drain") - held
    a.terminate()
    a.wait(timeout=30)
    server.stop()
    shutil.rmtree(buffer, ignore_errors=True)
    return {"backlog": held_on_disk, "reached": held, "disk_mb": disk_bytes / 2**20, "drain_s": took, "agent_cpu_s": cpu,
            "live_after": live}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", default=".build/release")
    p.add_argument("--seconds", type=int, default=120)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    runs = [steady(args.bin, args.seconds, 0, 1) for _ in range(args.runs)]
    med = lambda key: sorted(r[key] for r in runs)[len(runs) // 2]  # noqa: E731
    print(f"\nSteady state, 1 sample/s, every input (+ per-core, 10 textfile gauges): {runs[0]['gauges']} gauges per sample; "
          f"{args.runs} runs of {args.seconds} s, medians")
    print(f"  {'':28} {'CPU % of a core':>16} {'CPU s per hour':>15} {'peak RSS MiB':>13} {'private MiB':>12}")
    print(f"  {'gridmon-agent':28} {med('agent_cpu_pct'):16.3f} {med('agent_cpu_pct') * 36:15.1f} {med('agent_rss_mb'):13.1f} "
          f"{med('agent_private_mb'):12.1f}")
    if "exporter_cpu_pct" in runs[0]:
        print(f"  {'node_exporter, scraped 1/s':28} {med('exporter_cpu_pct'):16.3f} {med('exporter_cpu_pct') * 36:15.1f} "
              f"{med('exporter_rss_mb'):13.1f} {med('exporter_private_mb'):12.1f}")
    print(f"  bytes on the wire per sample (server bytes_received / samples_accepted): {med('bytes_per_sample'):.0f}")
    d = drain(args.bin, 0, 1, 3600)
    assert d["reached"] >= d["backlog"], d
    print(f"\nBacklog drain (the agent's start included): {d['backlog']} samples ({d['disk_mb']:.1f} MiB on disk) reached the server in {d['drain_s']:.2f} s "
          f"({d['backlog'] / d['drain_s']:.0f} samples/s, agent CPU {d['agent_cpu_s']:.2f} s); "
          f"{d['live_after']} live samples followed in the next 3 s (1/s expected)")


if __name__ == "__main__":
    main()
