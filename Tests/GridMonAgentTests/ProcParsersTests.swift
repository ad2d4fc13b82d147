import Testing
import GridMonWire
@testable import GridMonAgent

@Suite struct ProcParsersTests {
    @Test func cpuBusyPercentFromTwoReads() throws {
        let a = try #require(CPUTimes(procStat: "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3 4\n"))
        let b = try #require(CPUTimes(procStat: "cpu  160 0 70 900 70 0 0 0 0 0\n"))
        // busy grew by 80 (user 60 + system 20); total by 200 (idle 100, iowait 20 are not busy).
        #expect(b.percentBusy(since: a) == 40)
        #expect(a.percentBusy(since: b) == 0)  // counters went backwards: no nonsense
        #expect(CPUTimes(procStat: "intr 1 2 3\n") == nil)
    }

    @Test func memoryFromMeminfo() {
        let text: Substring = "MemTotal:       16000000 kB\nMemFree:  1000 kB\nMemAvailable:    4000000 kB\n"
        #expect(memoryPercent(meminfo: text) == 75)
        #expect(memoryPercent(meminfo: "MemTotal: 100 kB\n") == nil)
    }

    @Test func loadNetworkAndDisks() {
        #expect(loadAverage1(loadavg: "0.42 0.30 0.20 1/123 4567\n") == 0.42)
        let netDev: Substring = """
            Inter-|   Receive                                                |  Transmit
             face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
                lo: 9999999     100    0    0    0     0          0         0  9999999     100    0    0    0     0       0          0
              eth0: 1000      10    0    0    0     0          0         0     2000      20    0    0    0     0       0          0
              eth1: 500       5    0    0    0     0          0         0     700      7    0    0    0     0       0          0
            """
        let net = networkBytes(netDev: netDev)
        #expect(net?.rx == 1500 && net?.tx == 2700)
        let diskstats: Substring = """
               7       0 loop0 5 0 100 0 0 0 100 0 0 0 0
             254       0 vda 10 0 2000 0 5 0 4000 0 0 0 0
             254       1 vda1 10 0 2000 0 5 0 4000 0 0 0 0
             259       0 nvme0n1 1 0 10 0 1 0 20 0 0 0 0
             259       1 nvme0n1p1 1 0 10 0 1 0 20 0 0 0 0
            """
        let disk = diskBytes(diskstats: diskstats)
        #expect(disk.read == (2000 + 10) * 512 && disk.written == (4000 + 20) * 512)
    }

    @Test func wholeDisksOnly() {
        for name in ["sda", "vdb", "xvda", "nvme0n1", "mmcblk0"] { #expect(isWholeDisk(name), "\(name)") }
        for name in ["sda1", "nvme0n1p2", "mmcblk0p1", "loop3", "ram0", "dm-1", "sr0"] { #expect(!isWholeDisk(name), "\(name)") }
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

    @Test func manyAcksKeepMemoryBounded() {
        var buffer = SampleBuffer(capacity: 10_000)
        for seq in 1...50_000 {
            buffer.append(sample(UInt64(seq)))
            if seq % 10 == 0 { buffer.acknowledge(UInt64(seq)) }
        }
        #expect(buffer.count == 0 && buffer.dropped == 0)
    }
}
