import GridMonWire

/// Extra gauges shaped like `gridmon-agent`'s, for load that looks like a real fleet's.
///
/// Why: the flood's samples carry only the eight fixed gauges, but an agent with every input
/// sends about 42 named ones besides (README, "Inputs": one mount, one disk, one interface),
/// most of them longer than the 15 bytes a Swift string holds without an allocation. What
/// each of those costs the server (decoding, the detector's columns, the outbox) is invisible
/// without them. Pure; the values are a function of the gauge and `seq` alone, so a resent
/// sample repeats them.
public enum AgentGauges {
    /// The agent's extra gauges on a machine with one mount (`/`), one disk (`sda`) and one
    /// interface (`eth0`), in the order its inputs send them.
    public static let typical: [String] = [
        "cpu_usage_user", "cpu_usage_system", "cpu_usage_idle", "cpu_usage_iowait",
        "cpu_usage_steal", "cpu_usage_nice", "cpu_usage_irq",
        "mem_total", "mem_used", "mem_available", "mem_cached", "mem_buffered",
        "swap_total", "swap_used", "swap_used_percent", "swap_in_bytes_per_s", "swap_out_bytes_per_s",
        "system_load5", "system_load15", "system_uptime", "system_n_cpus",
        "processes_running", "processes_blocked", "processes_total", "processes_total_threads",
        "disk_used_percent./", "disk_inodes_used_percent./",
        "diskio_read_bytes_per_s.sda", "diskio_write_bytes_per_s.sda", "diskio_reads_per_s.sda",
        "diskio_writes_per_s.sda", "diskio_io_util.sda",
        "net_bytes_recv_per_s.eth0", "net_bytes_sent_per_s.eth0", "net_packets_recv_per_s.eth0",
        "net_packets_sent_per_s.eth0", "net_err_in_per_s.eth0", "net_err_out_per_s.eth0",
        "net_drop_in_per_s.eth0", "net_drop_out_per_s.eth0",
        "agent_buffer_samples", "agent_buffer_dropped_total",
    ]

    /// Most extra gauges a flood sample carries (a bound on the load this tool makes; the
    /// agent's textfile input alone may add 1,000).
    public static let maxCount = 1_000

    /// The names of `count` gauges: `typical` first, then `textfile_gauge_<i>` (as a
    /// node_exporter textfile would add). Precondition: `0...maxCount`.
    public static func names(_ count: Int) -> [String] {
        precondition((0...maxCount).contains(count), "extra gauges must be 0 ... \(maxCount)")
        return (0..<count).map { $0 < typical.count ? typical[$0] : "textfile_gauge_\($0)" }
    }

    /// `names` with values for sample `seq`: gauge i moves on a period of its own, so no two
    /// columns are alike and no column is constant.
    public static func gauges(_ names: [String], seq: UInt64) -> [Gauge] {
        names.indices.map { i in
            let period = UInt64(60 + 7 * i)
            let phase = Double(seq % period) / Double(period)
            return Gauge(name: names[i], value: Double(100 * (i + 1)) * (1 + phase))
        }
    }
}
