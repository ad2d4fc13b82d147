"""Tools/eval-asd --live: ASD through a real gridmon-stream-server with default flags.

For each server: its train rows then its test rows are sent by gridmon-flood --mode replay
(one node, every column an extra gauge, 1,000 samples/s so background fits keep pace the way
they do at 1 sample/s), the server is stopped cleanly, and the anomaly_score and
anomaly_detected the server stored for the test rows are read back with
`gridmon-stream-server export` and evaluated with `gridmon-train evaluate --scores`."""
import json, os, shutil, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "bench"))
from server_bench import free_port  # noqa: E402

bindir, data, rate = sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 1000
EPOCH = 1_767_225_600_000_000_000


def run_server(work, name):
    port = free_port()
    log = open(f"{work}/{name}.log", "w")
    proc = subprocess.Popen([f"{bindir}/gridmon-stream-server", "--insecure-no-auth", "--listen", f"127.0.0.1:{port}",
                             "--admin-listen", "off", "--data-dir", f"{work}/{name}-data"], stderr=log)
    deadline = time.time() + 10
    while time.time() < deadline:
        if "event=listening" in open(f"{work}/{name}.log").read():
            return proc, port
        time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"{name}: server did not start")


results = {}
servers = sorted((d for d in os.listdir(data) if d.startswith("omi-")), key=lambda s: int(s.split("-")[1]))
with tempfile.TemporaryDirectory() as work:
    for name in servers:
        train = open(f"{data}/{name}/train.csv").read().splitlines()
        test = open(f"{data}/{name}/test.csv").read().splitlines()
        with open(f"{work}/{name}.csv", "w") as f:
            f.write("\n".join(train + test[1:]) + "\n")
        rows = len(train) - 1 + len(test) - 1
        proc, port = run_server(work, name)
        try:
            flood = subprocess.run([f"{bindir}/gridmon-flood", "--target", f"127.0.0.1:{port}", "--mode", "replay",
                                    "--replay-file", f"{work}/{name}.csv", "--connections", "1", "--streams", "1",
                                    "--batch", "10", "--rate", str(rate), "--samples", str(rows), "--quiet", "--json"],
                                   capture_output=True, text=True, timeout=600)
            assert flood.returncode == 0, flood.stderr
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        export = subprocess.run([f"{bindir}/gridmon-stream-server", "export", "--data-dir", f"{work}/{name}-data"],
                                capture_output=True, text=True, check=True).stdout
        stored = {}
        opened, closed = {}, {}  # incident id -> seq of its first / last flagged sample
        for line in export.splitlines():
            if line.startswith("gridmon_incidents,"):
                seq = (int(line.split(" ")[-1]) - EPOCH) // 1_000_000_000
                ident = int(line.split(" id=")[1].split("i")[0])
                (opened if ",event=opened" in line.split(" ")[0] else closed)[ident] = seq
                continue
            if not line.startswith("system_metrics,"):
                continue
            fields, ts = line.split(" ")[-2], int(line.split(" ")[-1])
            kv = dict(f.split("=", 1) for f in fields.split(","))
            stored[(ts - EPOCH) // 1_000_000_000] = (float(kv["anomaly_score"]), kv["anomaly_detected"] == "1i")
        first = len(train)  # seq of the first test row is len(train) (header excluded: rows 1..n)
        with open(f"{work}/{name}-scores.csv", "w") as f:
            f.write("score,flagged\n")
            for seq in range(first, first + len(test) - 1):
                score, flagged = stored[seq]
                f.write(f"{score},{1 if flagged else 0}\n")
        # The server's incidents over the test rows: every sample from an incident's first
        # flagged sample to its last (to the end for one still open) counts as flagged.
        last = first + len(test) - 2
        spans = [(start, closed.get(ident, last)) for ident, start in opened.items() if closed.get(ident, last) >= first]
        labels = [int(float(v)) for v in open(f"{data}/{name}/labels.csv").read().split()[1:]]
        with open(f"{work}/{name}-incidents.csv", "w") as f:
            f.write("score,flagged\n")
            for seq in range(first, last + 1):
                inside = any(a <= seq <= b for a, b in spans)
                f.write(f"{stored[seq][0]},{1 if inside else 0}\n")
        real = sum(1 for a, b in spans if any(labels[k - first] for k in range(max(a, first), b + 1)))

        def evaluate(scores):
            q = subprocess.run([f"{bindir}/gridmon-train", "evaluate", "--scores", scores, "--labels", f"{data}/{name}/labels.csv",
                                "--json"], capture_output=True, text=True, check=True)
            return json.loads(q.stdout)
        if os.environ.get("GRIDMON_LIVE_KEEP"):  # a directory to keep each server's stored scores in
            os.makedirs(os.environ["GRIDMON_LIVE_KEEP"], exist_ok=True)
            shutil.copy(f"{work}/{name}-scores.csv", os.environ["GRIDMON_LIVE_KEEP"])
        results[name] = evaluate(f"{work}/{name}-scores.csv")
        inc = evaluate(f"{work}/{name}-incidents.csv")
        results[name].update(incident_precision=inc["precision_at_flag"], incident_recall=inc["recall_at_flag"],
                             incidents=len(spans), incidents_real=real)
        print(f"{name}: {json.dumps(results[name])}", file=sys.stderr)

mean = lambda k: sum(r[k] for r in results.values()) / len(results)
print("| server | live ROC-AUC | PR-AUC | best F1 | flagged samples: precision / recall (count) "
      "| samples in incidents: precision / recall | incidents (on a labelled anomaly) |")
print("|---|---|---|---|---|---|---|")
for name, r in results.items():
    print(f"| {name} | {r['roc_auc']:.3f} | {r['pr_auc']:.3f} | {r['best_f1']:.3f} | "
          f"{r['precision_at_flag']:.3f} / {r['recall_at_flag']:.3f} ({r['flagged']}) | "
          f"{r['incident_precision']:.3f} / {r['incident_recall']:.3f} | {r['incidents']} ({r['incidents_real']}) |")
total = sum(r["incidents"] for r in results.values())
real = sum(r["incidents_real"] for r in results.values())
print(f"| **mean** | {mean('roc_auc'):.3f} | {mean('pr_auc'):.3f} | {mean('best_f1'):.3f} | "
      f"{mean('precision_at_flag'):.3f} / {mean('recall_at_flag'):.3f} | "
      f"{mean('incident_precision'):.3f} / {mean('incident_recall'):.3f} | {total} ({real}) |")
