import Foundation
import Testing
import GridMonWire
@testable import GridMonAgent

/// The /proc parsers on captured file contents (proc(5) formats).
@Suite struct ProcParsersTests {
    @Test func cpuModesFromTwoReads() throws {
        let a = try #require(ProcStat("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 60 0 20 400 20 0 0 0\ncpu1 40 0 30 400 30 0 0 0\nprocs_running 3\nprocs_blocked 1\n"))
        let b = try #require(ProcStat("cpu  160 0 70 900 70 5 5 10 0 0\ncpu0 100 0 30 450 30 0 0 0\n"))
        #expect(a.perCPU.map(\.name) == ["cpu0", "cpu1"] && a.procsRunning == 3 && a.procsBlocked == 1)
        // busy grew by 100 (user 60, system 20, irq 5, softirq 5, steal 10); total by 220.
        #expect(abs(b.total.percentBusy(since: a.total) - 100.0 * 100 / 220) < 1e-9)
        let usage = try #require(b.total.usage(since: a.total))
        #expect(abs(usage.user - 100.0 * 60 / 220) < 1e-9 && abs(usage.iowait - 100.0 * 20 / 220) < 1e-9)
        #expect(abs(usage.steal - 100.0 * 10 / 220) < 1e-9 && abs(usage.irq - 100.0 * 10 / 220) < 1e-9)
        let sum = usage.user + usage.system + usage.idle + usage.iowait + usage.steal + usage.nice + usage.irq
        #expect(abs(sum - 100) < 1e-9)
        #expect(a.total.percentBusy(since: b.total) == 0 && a.total.usage(since: b.total) == nil)  // counters went back
        #expect(ProcStat("intr 1 2 3\n") == nil)
        // Kernels before 2.6.11 have four modes only.
        #expect(ProcStat("cpu 1 2 3 4\n")?.total.total == 10)
    }

    @Test func memoryAndSwapFromMeminfo() throws {
        let text: Substring = """
            MemTotal:       16000000 kB
            MemFree:         1000000 kB
            MemAvailable:    4000000 kB
            Buffers:          100000 kB
            Cached:          2000000 kB
            SwapTotal:       1000000 kB
            SwapFree:         750000 kB
            SReclaimable:     300000 kB
            HugePages_Total:       0
            """
        let mem = try #require(MemInfo(text))
        #expect(mem.usedPercent == 75 && mem.used == 12_000_000 * 1024)
        #expect(mem.cached == 2_300_000 * 1024 && mem.buffers == 100_000 * 1024)
        #expect(mem.swapUsedPercent == 25 && mem.swapUsed == 250_000 * 1024)
        #expect(MemInfo("MemTotal: 100 kB\n") == nil)  // no MemAvailable: refuse to guess
        #expect(MemInfo("MemTotal: 100 kB\nMemAvailable: 100 kB\n")?.swapUsedPercent == 0)  // no swap
        #expect(swapPages(vmstat: "pgfault 5\npswpin 12\npswpout 34\n")! == (12, 34))
    }

    @Test func interfacesAndTheirTotals() {
        let netDev: Substring = """
            Inter-|   Receive                                                |  Transmit
             face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
                lo: 9999999     100    0    0    0     0          0         0  9999999     100    0    0    0     0       0          0
              eth0: 1000      10    1    2    0     0          0         0     2000      20    3    4    0     0       0          0
            veth1234567890ab:500       5    0    0    0     0          0         0     700      7    0    0    0     0       0          0
            """
        let all = interfaceCounters(netDev: netDev)
        #expect(all.map(\.name) == ["lo", "eth0", "veth1234567890ab"])
        #expect(all[1] == InterfaceCounters(name: "eth0", bytesRecv: 1000, packetsRecv: 10, errIn: 1, dropIn: 2,
                                            bytesSent: 2000, packetsSent: 20, errOut: 3, dropOut: 4))
        let net = networkTotals(all)
        #expect(net.rx == 1500 && net.tx == 2700)  // loopback is not network traffic
    }

    @Test func wholeDisksWithoutPartitionDoubleCount() {
        let diskstats: Substring = """
               7       0 loop0 5 0 100 0 0 0 100 0 0 0 0
             254       0 vda 10 0 2000 0 5 0 4000 0 0 70 0
             254       1 vda1 10 0 2000 0 5 0 4000 0 0 70 0
             259       0 nvme0n1 1 0 10 0 1 0 20 0 0 3 0
             259       1 nvme0n1p1 1 0 10 0 1 0 20 0 0 3 0
            """
        let devices = deviceCounters(diskstats: diskstats)
        #expect(devices.map(\.name) == ["vda", "nvme0n1"])
        #expect(devices[0] == DeviceCounters(name: "vda", reads: 10, readBytes: 2000 * 512, writes: 5, writeBytes: 4000 * 512, ioTimeMs: 70))
        let disk = diskTotals(devices)
        #expect(disk.read == (2000 + 10) * 512 && disk.written == (4000 + 20) * 512)
        for name in ["sda", "vdb", "xvda", "nvme0n1", "mmcblk0"] { #expect(isWholeDisk(name), "\(name)") }
        for name in ["sda1", "nvme0n1p2", "mmcblk0p1", "loop3", "ram0", "dm-1", "sr0", "zram0"] { #expect(!isWholeDisk(name), "\(name)") }
    }

    @Test func loadUptimeAndMounts() throws {
        let load = try #require(LoadAverage("0.42 0.30 0.20 2/345 6789\n"))
        #expect(load == LoadAverage("0.42 0.30 0.20 1/345 1") && load.load15 == 0.20 && load.threads == 345)
        #expect(LoadAverage("0.42 0.30\n") == nil)
        #expect(uptimeSeconds(uptime: "19892.30 39000.10\n") == 19892.30)
        let text: Substring = """
            proc /proc proc rw,relatime 0 0
            /dev/vda / ext4 rw,relatime 0 0
            tmpfs /dev/shm tmpfs rw 0 0
            /dev/vdb /srv/my\\040data xfs rw 0 0
            /dev/vda /var/lib/docker/bind ext4 rw 0 0
            overlay /var/lib/docker/overlay2/x/merged overlay rw 0 0
            """
        let real = realFilesystems(mounts(text))
        #expect(real.map(\.path) == ["/", "/srv/my data"])  // pseudo filesystems out, each device once
        #expect(unescapeMountField("a\\134b\\011c") == "a\\b\tc")
    }

    @Test func textfileLinesGaugesAndProblems() {
        let text: Substring = """
            # HELP backup_age_seconds Age of the last backup.
            # TYPE backup_age_seconds gauge
            backup_age_seconds 3600
            queue_depth{queue="mail out",prio="1"} 17 1700000000000
            9bad 1
            no_value
            temperature_c NaN
            ratio +Inf
            spaced_name  2.5e3\r
            """
        let parsed = Textfile.parse(text)
        #expect(parsed.gauges.map(\.name) == ["backup_age_seconds", "queue_depth{queue=\"mail out\",prio=\"1\"}", "spaced_name"])
        #expect(parsed.gauges.map(\.value) == [3600, 17, 2500])
        #expect(parsed.problems.map(\.line) == [5, 6, 7, 8])
        #expect(parsed.problems[2].message.contains("not a finite number"))
        let many = Substring((0..<1500).map { "g\($0) 1" }.joined(separator: "\n"))
        let bounded = Textfile.parse(many)
        #expect(bounded.gauges.count == Textfile.maxGauges && bounded.problems.count == 1)
        #expect(Textfile.parse("x\\y 1").problems.count == 1)
        #expect(Textfile.parse("open{a=\"b\" 1").problems.first?.message == "unterminated label set")
    }

    @Test func onceJSONEscapesAndKeepsOrder() {
        var sample = Sample(seq: 7, timestampNs: 42, cpuPercent: 12.5, memoryPercent: 50)
        sample.extra = [Gauge(name: "q{a=\"x\"}", value: 3), Gauge(name: "tab\tname", value: -0.25)]
        let json = SampleJSON.encode(sample, node: "n\"1")
        #expect(json.hasPrefix("{\"node\":\"n\\\"1\",\"seq\":7,\"timestamp_ns\":42,\"gauges\":{\"cpu\":12.5,\"memory\":50,"))
        #expect(json.hasSuffix(",\"q{a=\\\"x\\\"}\":3,\"tab\\tname\":-0.25}}"))
    }
}

/// The collectors on a captured /proc that lacks files, as a container's does.
@Suite struct SystemSamplerTests {
    @Test func aMachineLackingSourcesIsSampledWithWhatItHasAndSaysSoOnce() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("gridmon-proc-\(UUID())").path
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        func write(_ name: String, _ text: String) throws { try text.write(toFile: root + "/" + name, atomically: true, encoding: .utf8) }
        try write("stat", "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 100 0 50 800 50 0 0 0\nprocs_running 2\nprocs_blocked 0\n")
        try write("meminfo", "MemTotal: 1000 kB\nMemAvailable: 250 kB\n")
        try write("loadavg", "0.50 0.40 0.30 1/99 123\n")
        let sampler = SystemSampler(procRoot: root, sysRoot: root)
        _ = sampler.sample(seq: 0)
        try write("stat", "cpu  160 0 70 900 70 0 0 0 0 0\ncpu0 160 0 70 900 70 0 0 0\nprocs_running 3\nprocs_blocked 1\n")
        let sample = sampler.sample(seq: 1)
        #expect(sample.cpuPercent == 40 && sample.memoryPercent == 75 && sample.load1 == 0.5)
        let names = Set(sample.extra.map(\.name))
        #expect(names.isSuperset(of: ["cpu_usage_user", "mem_available", "system_load5", "processes_running", "processes_blocked"]))
        #expect(!names.contains { $0.hasPrefix("diskio_") || $0.hasPrefix("net_") || $0.hasPrefix("swap_in") })
        // Each missing source is noted once, however many rounds and inputs read it.
        #expect(sampler.missingSources.isSuperset(of: ["diskstats", "net/dev", "vmstat", "uptime"]))
        let reports = sampler.missingReports
        _ = sampler.sample(seq: 2)
        #expect(reports >= 4 && sampler.missingReports == reports)
    }
}

@Suite struct SampleBufferTests {
    private func sample(_ seq: UInt64) -> Sample { Sample(seq: seq, timestampNs: Int64(seq)) }

    @Test func acksRemoveAndReconnectsResendTheRest() {
        var buffer = SampleBuffer(capacity: 100)
        for seq: UInt64 in 1...10 { buffer.append(sample(seq)) }
        #expect(buffer.takeUnsent(max: 4).map(\.seq) == [1, 2, 3, 4])
        #expect(buffer.takeUnsent(max: 100).map(\.seq) == Array(5...10))
        #expect(buffer.takeUnsent(max: 100).isEmpty)
        buffer.acknowledge(6)
        #expect(buffer.count == 4 && buffer.oldestSeq == 7)
        buffer.resendAll()
        #expect(buffer.takeUnsent(max: 100).map(\.seq) == [7, 8, 9, 10])
    }

    @Test func fullBufferDropsTheOldestAndCounts() {
        var buffer = SampleBuffer(capacity: 3)
        for seq: UInt64 in 1...5 { buffer.append(sample(seq)) }
        #expect(buffer.count == 3 && buffer.dropped == 2 && buffer.oldestSeq == 3)
        #expect(buffer.takeUnsent(max: 10).map(\.seq) == [3, 4, 5])
    }

    @Test func renumberingContinuesTheServersSequence() {
        var buffer = SampleBuffer(capacity: 10)
        for seq: UInt64 in 1...3 { buffer.append(sample(seq)) }
        #expect(buffer.renumber(after: 500) == 503)
        // A server announcing a seq with no room left is refused, never a trap (issue #10).
        var other = buffer
        #expect(other.renumber(after: UInt64.max) == nil && other.renumber(after: SampleBuffer.maxSeq - 2) == nil)
        #expect(other.newestSeq == 503)
        #expect(buffer.takeUnsent(max: 10).map(\.seq) == [501, 502, 503])
    }

    @Test func byteBoundDropsTheOldest() {
        var big = Sample(seq: 1, timestampNs: 0)
        big.extra = (0..<50).map { Gauge(name: "a_rather_long_gauge_name_\($0)", value: 1) }
        var buffer = SampleBuffer(capacity: 1000, maxBytes: 10 * SampleBuffer(capacity: 1).cost(of: big))
        let size = buffer.cost(of: big)  // seqs 1...25 encode to the same size
        for seq: UInt64 in 1...25 {
            big.seq = seq
            buffer.append(big)
        }
        #expect(buffer.count == 10 && buffer.dropped == 15 && buffer.oldestSeq == 16 && buffer.bytes == size * 10)
        buffer.acknowledge(20)
        #expect(buffer.bytes == size * 5)
    }

    @Test func manyAcksKeepMemoryBounded() {
        var buffer = SampleBuffer(capacity: 10_000)
        for seq in 1...50_000 {
            buffer.append(sample(UInt64(seq)))
            if seq % 10 == 0 { buffer.acknowledge(UInt64(seq)) }
        }
        #expect(buffer.count == 0 && buffer.dropped == 0)
    }
}
