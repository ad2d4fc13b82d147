import Foundation
import Glibc
import Testing

private let python = ProcessInfo.processInfo.environment["GRIDMON_PYTHON"]
private let required = ProcessInfo.processInfo.environment["GRIDMON_REQUIRE_INTEROP"] == "1"

/// The agent's collectors against independent readers on the same machine (issue #12):
/// Python's psutil, `df` and /proc/loadavg, idle and under a CPU, disk and network load the
/// check creates itself (the network load crosses a veth pair into a network namespace it
/// makes, so no address outside the machine is touched). Tools/test provides psutil in
/// GRIDMON_PYTHON; without it the suite is skipped, unless GRIDMON_REQUIRE_INTEROP=1.
@Suite(.serialized, .enabled(if: python != nil || required))
struct AgentCollectorTests {
    @Test func collectorsAgreeWithPsutilDfAndProcIdleAndUnderLoad() throws {
        let interpreter = try #require(python, "GRIDMON_REQUIRE_INTEROP=1 but GRIDMON_PYTHON is not set")
        let script = tempPath("collectors.py")
        try Self.check.write(toFile: script, atomically: true, encoding: .utf8)
        defer { unlink(script) }
        let agent = ServerProcess.binary.deletingLastPathComponent().appendingPathComponent("gridmon-agent").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: interpreter)
        process.arguments = [script, agent, required ? "require-netns" : "netns-optional"]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        let results = try #require(try JSONSerialization.jsonObject(with: data) as? [[String: Any]], "\(text)")
        #expect(results.count >= 25)
        for result in results where result["ok"] as? Bool != true {
            Issue.record("\(result["name"] ?? "?"): agent \(result["agent"] ?? "nil") vs reference \(result["reference"] ?? "nil") (\(result["note"] ?? ""))")
        }
        #expect(process.terminationStatus == 0)
    }

    /// The check itself: prints a JSON list of {name, agent, reference, ok}.
    static let check = #"""
    import json, os, shutil, socket, subprocess, sys, tempfile, threading, time
    import psutil

    agent, netns_mode = sys.argv[1], sys.argv[2]
    results = []

    def check(name, got, want, tol_abs=0.0, tol_rel=0.0, note=""):
        ok = got is not None and want is not None and abs(got - want) <= max(tol_abs, tol_rel * abs(want))
        results.append({"name": name, "agent": got, "reference": want, "ok": ok, "note": note})

    def once(interval, extra=()):
        out = subprocess.run([agent, "--once", "--interval", interval, *extra], capture_output=True, text=True, timeout=120)
        return json.loads(out.stdout)["gauges"]

    # --- Idle: levels the machine holds still.
    g = once("200ms")
    vm, sw = psutil.virtual_memory(), psutil.swap_memory()
    check("mem_total", g["mem_total"], vm.total)
    check("mem_available", g["mem_available"], vm.available, tol_rel=0.05)
    check("mem_cached", g["mem_cached"], vm.cached, tol_rel=0.10, tol_abs=64e6)
    check("mem_buffered", g["mem_buffered"], vm.buffers, tol_rel=0.10, tol_abs=16e6)
    check("memory (used %)", g["memory"], 100.0 * (vm.total - vm.available) / vm.total, tol_abs=2)
    check("swap_total", g["swap_total"], sw.total)
    check("swap_used", g["swap_used"], sw.used, tol_rel=0.05, tol_abs=16e6)
    du = psutil.disk_usage("/")
    check("disk (fixed, /)", g["disk"], du.percent, tol_abs=0.5)
    df = subprocess.run(["df", "--output=pcent,ipcent", "/"], capture_output=True, text=True).stdout.split("\n")[1].split()
    check("disk_used_percent./ vs df", g["disk_used_percent./"], float(df[0].rstrip("%")), tol_abs=1.0, note="df rounds up")
    check("disk_inodes_used_percent./ vs df", g["disk_inodes_used_percent./"], float(df[1].rstrip("%")), tol_abs=1.0)
    agent_mounts = {k[len("disk_used_percent."):] for k in g if k.startswith("disk_used_percent.")}
    for part in psutil.disk_partitions(all=False):
        key = "disk_used_percent." + part.mountpoint
        if key in g:
            check(key, g[key], psutil.disk_usage(part.mountpoint).percent, tol_abs=0.5)
    physical = {p.device for p in psutil.disk_partitions(all=False) if p.device.startswith("/dev/")}
    covered = {p.device for p in psutil.disk_partitions(all=False) if p.mountpoint in agent_mounts}
    check("every physical filesystem reported", len(physical - covered), 0, note=str(sorted(physical - covered)))
    with open("/proc/loadavg") as f:
        load = [float(x) for x in f.read().split()[:3]]
    check("load1", g["load1"], load[0], tol_abs=0.3)
    check("system_load5", g["system_load5"], load[1], tol_abs=0.2)
    check("system_load15", g["system_load15"], load[2], tol_abs=0.2)
    check("system_n_cpus", g["system_n_cpus"], psutil.cpu_count())
    check("system_uptime", g["system_uptime"], time.time() - psutil.boot_time(), tol_abs=3)
    check("processes_total", g["processes_total"], len(psutil.pids()), tol_abs=10, tol_rel=0.1)

    # --- Under load: rates over one window, agent and psutil side by side.
    stop = threading.Event()

    def burn():
        while not stop.is_set():
            sum(i * i for i in range(10000))

    def write_disk(path):
        block = os.urandom(1 << 20)
        with open(path, "wb") as f:
            while not stop.is_set():
                f.write(block); f.flush(); os.fsync(f.fileno())
                if f.tell() > (256 << 20):
                    f.seek(0)

    netns, veth = None, None
    if os.geteuid() == 0 and shutil.which("ip"):
        tag = str(os.getpid() % 100000)
        netns, veth, peer = "gmtest" + tag, "gmva" + tag, "gmvb" + tag
        net = "10.213.%d" % (os.getpid() % 250)
        def ip(*args):
            subprocess.run(["ip", *args], check=True, capture_output=True)
        ip("netns", "add", netns)
        ip("link", "add", veth, "type", "veth", "peer", "name", peer)
        ip("link", "set", peer, "netns", netns)
        ip("addr", "add", net + ".1/24", "dev", veth)
        ip("link", "set", veth, "up")
        ip("netns", "exec", netns, "ip", "addr", "add", net + ".2/24", "dev", peer)
        ip("netns", "exec", netns, "ip", "link", "set", peer, "up")

    def send_udp():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        payload = b"x" * 1000
        target = ("10.213.%d.2" % (os.getpid() % 250), 9)
        while not stop.is_set():
            for _ in range(20):
                try:
                    s.sendto(payload, target)
                except OSError:
                    pass
            time.sleep(0.01)  # ~2,000 datagrams/s: a steady ~2 MB/s

    disk_file = os.path.join(tempfile.gettempdir(), "gridmon-collector-load-%d" % os.getpid())
    workers = [threading.Thread(target=burn), threading.Thread(target=write_disk, args=(disk_file,))]
    if netns:
        workers.append(threading.Thread(target=send_udp))
    try:
        # psutil's CPU load runs in a separate process so the GIL does not share it with the rest.
        burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        for w in workers:
            w.start()
        time.sleep(1.0)  # let the load settle
        cpu0, disk0, net0 = psutil.cpu_times(), psutil.disk_io_counters(perdisk=True), psutil.net_io_counters(pernic=True)
        t0 = time.time()
        g = once("3s", ["--collectors", "cpu,diskio,net"])
        span = time.time() - t0
        cpu1, disk1, net1 = psutil.cpu_times(), psutil.disk_io_counters(perdisk=True), psutil.net_io_counters(pernic=True)
    finally:
        stop.set()
        burner.kill()
        for w in workers:
            w.join()
        if os.path.exists(disk_file):
            os.unlink(disk_file)
        if netns:
            subprocess.run(["ip", "netns", "del", netns], capture_output=True)

    modes = ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"]
    delta = {m: getattr(cpu1, m) - getattr(cpu0, m) for m in modes}
    total = sum(delta.values())
    check("cpu busy % under load", g["cpu"], 100.0 * (total - delta["idle"] - delta["iowait"]) / total, tol_abs=8)
    check("cpu_usage_user under load", g["cpu_usage_user"], 100.0 * delta["user"] / total, tol_abs=8)
    check("cpu_usage_system under load", g["cpu_usage_system"], 100.0 * delta["system"] / total, tol_abs=8)
    check("cpu busy is high under load", g["cpu"] > 40, True)
    devices = [k[len("diskio_write_bytes_per_s."):] for k in g if k.startswith("diskio_write_bytes_per_s.")]
    busiest = max(devices, key=lambda d: g["diskio_write_bytes_per_s." + d])
    written = (disk1[busiest].write_bytes - disk0[busiest].write_bytes) / span
    check("diskio_write_bytes_per_s." + busiest + " under load", g["diskio_write_bytes_per_s." + busiest], written, tol_rel=0.25, tol_abs=512e3)
    check("disk write load seen", written > 1e6, True)
    check("disk_write (fixed) covers the busiest disk", g["disk_write"] >= g["diskio_write_bytes_per_s." + busiest] * 0.99, True)
    if netns:
        sent = (net1[veth].bytes_sent - net0[veth].bytes_sent) / span
        packets = (net1[veth].packets_sent - net0[veth].packets_sent) / span
        check("net_bytes_sent_per_s." + veth + " under load", g.get("net_bytes_sent_per_s." + veth), sent, tol_rel=0.15)
        check("net_packets_sent_per_s." + veth + " under load", g.get("net_packets_sent_per_s." + veth), packets, tol_rel=0.15)
        check("network load seen", sent > 5e5, True)
        check("net_tx (fixed) includes the veth", g["net_tx"] >= g.get("net_bytes_sent_per_s." + veth, 0) * 0.99, True)
    elif netns_mode == "require-netns":
        check("network namespace for the network load (root and ip(8) needed)", None, True)

    print(json.dumps(results))
    sys.exit(0 if all(r["ok"] for r in results) else 1)
    """#
}
