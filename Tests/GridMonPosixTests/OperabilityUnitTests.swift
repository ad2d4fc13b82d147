import GridMonPosix
import Testing

@Suite struct ProcessMetricsTests {
    @Test func statFieldsAreCountedAfterTheLastParenthesis() throws {
        // A command name with a space and a ')' of its own (proc(5) allows both).
        let line = "4242 (gridmon) x) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 75 0 0 20 0 3 0 123456 987654321 4321 18446744073709551615"
        let stat = try #require(ProcessMetrics.parseStat(line))
        #expect(stat.userTicks == 250 && stat.systemTicks == 75)
        #expect(stat.startTicks == 123456 && stat.virtualBytes == 987654321 && stat.residentPages == 4321)
        #expect(ProcessMetrics.parseStat("4242 (short) S 1 2") == nil)
    }

    @Test func bootTimeAndOpenFileLimitAreRead() {
        #expect(ProcessMetrics.parseBootTime("cpu  1 2 3\nbtime 1764000000\nprocesses 9\n") == 1_764_000_000)
        #expect(ProcessMetrics.parseBootTime("cpu 1\n") == nil)
        let limits = "Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 524288               files\n"
        #expect(ProcessMetrics.parseMaxFiles(limits) == 1024)
    }

    @Test func theLiveProcessHasEveryFamily() {
        let text = ProcessMetrics.prometheusText()
        for family in ["process_cpu_seconds_total", "process_resident_memory_bytes", "process_virtual_memory_bytes",
                       "process_start_time_seconds", "process_open_fds", "process_max_fds"] {
            #expect(text.contains("# TYPE \(family) "), "\(family)")
        }
    }
}

@Suite struct LogFormatTests {
    @Test func logfmtHasRFC3339TimesAndQuotesWhatNeedsIt() {
        let line = Log.render(.info, "listening", ["address": "[::1]:7070", "note": "a b"], nowNs: 1_764_504_000_123_000_000, format: .logfmt)
        #expect(line == "ts=2025-11-30T12:00:00.123Z level=info event=listening address=[::1]:7070 note=\"a b\"\n")
    }

    @Test func jsonIsOneObjectWithTypedValues() {
        let line = Log.render(.warning, "x", ["n": 3, "f": 0.5, "ok": true, "s": "q\"uote", "inf": Double.infinity],
                              nowNs: 0, format: .json)
        #expect(line == "{\"ts\":\"1970-01-01T00:00:00.000Z\",\"level\":\"warn\",\"event\":\"x\",\"n\":3,\"f\":0.5,\"ok\":true,\"s\":\"q\\\"uote\",\"inf\":\"inf\"}\n")
    }

    @Test func formatsAndLevelsParseByName() {
        #expect(Log.Format(name: "JSON") == .json && Log.Format(name: "logfmt") == .logfmt && Log.Format(name: "xml") == nil)
    }
}

@Suite struct SocketAddressParseTests {
    @Test func shapesOperatorsWrite() throws {
        #expect(try SocketAddress.parse("127.0.0.1:7070").get() == SocketAddress(host: "127.0.0.1", port: 7070))
        #expect(try SocketAddress.parse(":7070").get() == SocketAddress(host: "0.0.0.0", port: 7070))
        #expect(try SocketAddress.parse("[::]:7070").get() == SocketAddress(host: "::", port: 7070))
        #expect(try SocketAddress.parse("[::1]:0").get().description == "[::1]:0")
        #expect(try SocketAddress.parse("localhost:1").get() == SocketAddress(host: "127.0.0.1", port: 1))
    }

    @Test func problemsSayWhatIsWrong() {
        func problem(_ text: String) -> String {
            if case .failure(let p) = SocketAddress.parse(text) { return p.description }
            return "parsed"
        }
        #expect(problem("0.0.0.0:99999") == "port 99999 is not within 0...65535")
        #expect(problem("127.0.0.1") == "no :PORT")
        #expect(problem("::1:7070") == "an IPv6 address goes in brackets, [::1]:7070")
        #expect(problem("[::1]7070") == "no :PORT after [IPV6]")
        #expect(problem("host:http") == "port 'http' is not a number")
        #expect(problem("no-such-host.invalid:1").hasPrefix("host 'no-such-host.invalid' does not resolve"))
    }

    @Test func loopbackIsRecognisedInBothFamilies() {
        #expect(SocketAddress(host: "127.0.0.2", port: 1).isLoopback)
        #expect(SocketAddress(host: "::1", port: 1).isLoopback)
        #expect(!SocketAddress(host: "10.0.0.1", port: 1).isLoopback)
    }
}
