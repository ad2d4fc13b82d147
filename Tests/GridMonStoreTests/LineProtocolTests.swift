import GridMonWire
import Testing
@testable import GridMonStore

private func line(_ point: Point) -> String? {
    var encoder = LineProtocolEncoder()
    var out: [UInt8] = []
    return encoder.append(point, to: &out) ? String(decoding: out, as: UTF8.self) : nil
}

private func point(_ tags: [(String, String)] = [], _ fields: [(String, Point.Value)] = [("v", .float(1))], measurement: String = "m") -> Point {
    Point(measurement: measurement, tags: tags.map { (key: $0.0, value: $0.1) }, fields: fields.map { (key: $0.0, value: $0.1) }, timestampNs: 1_700_000_000_000_000_000)
}

/// Golden lines, each checked by hand against the line protocol reference.
@Suite struct LineProtocolTests {
    @Test func plainPointWithEveryFieldType() {
        #expect(line(point([("host", "web-1")], [("f", .float(0.5)), ("i", .integer(-3)), ("b", .boolean(true)), ("s", .string("ok"))]))
                == "m,host=web-1 f=0.5,i=-3i,b=true,s=\"ok\" 1700000000000000000\n")
    }

    @Test func measurementEscapesCommaAndSpaceOnly() {
        #expect(line(point(measurement: "cpu load,total=x")) == "cpu\\ load\\,total=x v=1 1700000000000000000\n")
    }

    @Test func tagsAndFieldKeysEscapeCommaEqualsSpace() {
        #expect(line(point([("rack name", "a=b,c d")], [("field key,x=y", .float(2))]))
                == "m,rack\\ name=a\\=b\\,c\\ d field\\ key\\,x\\=y=2 1700000000000000000\n")
    }

    @Test func tagsAreSortedByKey() {
        #expect(line(point([("zone", "z"), ("host", "h"), ("app", "a")])) == "m,app=a,host=h,zone=z v=1 1700000000000000000\n")
    }

    @Test func stringFieldsEscapeQuoteAndBackslash() {
        #expect(line(point([], [("msg", .string("say \"hi\" C:\\tmp\\"))])) == "m msg=\"say \\\"hi\\\" C:\\\\tmp\\\\\" 1700000000000000000\n")
    }

    @Test func aTagValueEndingInABackslashCannotEatTheSeparator() {
        // `\` before the space would read as an escaped space: the run is made even.
        #expect(line(point([("path", "C:\\")])) == "m,path=C:\\\\ v=1 1700000000000000000\n")
        // An even run already pairs with itself and is kept as is.
        #expect(line(point([("path", "C:\\\\")])) == "m,path=C:\\\\ v=1 1700000000000000000\n")
        // A backslash inside a value is fine as is.
        #expect(line(point([("path", "C:\\Users")])) == "m,path=C:\\Users v=1 1700000000000000000\n")
    }

    @Test func backslashBeforeAnEscapedCommaKeepsTheCommaEscaped() {
        // value `a\,b`: the comma is escaped, and the backslash before it is doubled so the
        // scanner does not pair it with the comma's escape.
        #expect(line(point([("t", "a\\,b")])) == "m,t=a\\\\\\,b v=1 1700000000000000000\n")
    }

    @Test func newlinesNeverGetThrough() {
        var encoder = LineProtocolEncoder()
        var out: [UInt8] = []
        #expect(encoder.append(point([("ok", "1"), ("bad", "x\ny")], [("v", .float(1)), ("s", .string("a\nb")), ("k\r", .float(2))]), to: &out))
        #expect(String(decoding: out, as: UTF8.self) == "m,ok=1 v=1 1700000000000000000\n")
        #expect(encoder.drops.newlineElements == 3)
        #expect(!encoder.append(point(measurement: "m\n"), to: &out))
        #expect(encoder.drops.points == 1)
        #expect(!out.dropLast().contains(0x0A))
    }

    @Test func unicodePassesThrough() {
        #expect(line(point([("город", "Zürich 東京")], [("température", .float(21.5))]))
                == "m,город=Zürich\\ 東京 température=21.5 1700000000000000000\n")
    }

    @Test func emptyTagValuesAreOmittedAndCounted() {
        var encoder = LineProtocolEncoder()
        var out: [UInt8] = []
        encoder.append(point([("env", ""), ("host", "h")]), to: &out)
        #expect(String(decoding: out, as: UTF8.self) == "m,host=h v=1 1700000000000000000\n")
        #expect(encoder.drops.emptyTags == 1)
    }

    @Test func nanAndInfinityAreDroppedAndCounted() {
        var encoder = LineProtocolEncoder()
        var out: [UInt8] = []
        #expect(encoder.append(point([], [("a", .float(.nan)), ("b", .float(3)), ("c", .float(-.infinity))]), to: &out))
        #expect(String(decoding: out, as: UTF8.self) == "m b=3 1700000000000000000\n")
        #expect(encoder.drops.nonFiniteFields == 2)
        #expect(!encoder.append(point([], [("a", .float(.infinity))]), to: &out))
        #expect(encoder.drops.points == 1)
    }

    @Test func floatsKeepFullPrecision() {
        #expect(line(point([], [("x", .float(0.1 + 0.2)), ("y", .float(1e-300)), ("z", .float(123456789.0))]))
                == "m x=0.30000000000000004,y=1e-300,z=123456789 1700000000000000000\n")
    }

    @Test func systemMetricsKeepTheOriginalSchema() {
        let sample = Sample(seq: 7, timestampNs: 1_767_225_600_000_000_000, cpuPercent: 97.5, memoryPercent: 41.25, diskPercent: 63,
                            load1: 1.5, extra: [Gauge(name: "temp_c", value: 55), Gauge(name: "cpu", value: 1)])
        let p = SystemMetrics.point(node: "web 1", tenant: "acme", labels: [Label(key: "rack", value: "b12"), Label(key: "host", value: "spoof")],
                                    sample: sample, score: 0.73, anomalous: true)
        #expect(line(p) == "system_metrics,host=web\\ 1,rack=b12,tenant=acme cpu=97.5,memory=41.25,disk=63,anomaly_detected=1i,"
                + "anomaly_score=0.73,load1=1.5,net_rx=0,net_tx=0,disk_read=0,disk_write=0,temp_c=55 1767225600000000000\n")
    }

    @Test func batchLinesEqualPointByPointEncoding() {
        var samples: [(sample: Sample, score: Double, anomalous: Bool)] = []
        for i in 1...5 {
            let cpu: Double = i == 3 ? .nan : 12.5 * Double(i)
            let sample = Sample(seq: UInt64(i), timestampNs: -5 + Int64(i) * 1_000_000_007, cpuPercent: cpu,
                                memoryPercent: 100, diskPercent: 0.1 + 0.2, load1: -1.5, netRxBytesPerSec: 1e20,
                                extra: [Gauge(name: "fan rpm", value: 1200), Gauge(name: "bad\n", value: 1)])
            let score: Double = 0.25 * Double(i) / 3
            samples.append((sample, score, i % 2 == 0))
        }
        let labels = [Label(key: "zone", value: "eu west"), Label(key: "app", value: "C:\\")]
        var batch: [UInt8] = []
        var drops = LineProtocolDrops()
        SystemMetrics.appendLines(node: "n,1", tenant: "t", labels: labels, samples: samples, to: &batch, drops: &drops)
        var encoder = LineProtocolEncoder()
        var single: [UInt8] = []
        for s in samples {
            encoder.append(SystemMetrics.point(node: "n,1", tenant: "t", labels: labels, sample: s.sample, score: s.score, anomalous: s.anomalous), to: &single)
        }
        #expect(String(decoding: batch, as: UTF8.self) == String(decoding: single, as: UTF8.self))
        // The batch path refuses the gauge named "bad\n" as a name InfluxDB cannot take (counted
        // as a bad name); the generic encoder drops it for its newline. Same lines either way.
        #expect(drops.nonFiniteFields == encoder.drops.nonFiniteFields)
        #expect(drops.badNames == 5 && encoder.drops.newlineElements == 5)
    }

    @Test func gaugeNamesInfluxDBCannotTakeAreLeftOutAndCounted() {
        let sample = Sample(seq: 1, timestampNs: 1, cpuPercent: 1, memoryPercent: 2, diskPercent: 3,
                            extra: [Gauge(name: "g\\", value: 1), Gauge(name: "time", value: 2), Gauge(name: "ok", value: 3),
                                    Gauge(name: "ok", value: 4), Gauge(name: "", value: 5), Gauge(name: "a\u{01}", value: 6)])
        var out: [UInt8] = []
        var drops = LineProtocolDrops()
        SystemMetrics.appendLines(node: "n", tenant: "t", labels: [], samples: [(sample, 0.5, false)], to: &out, drops: &drops)
        let line = String(decoding: out, as: UTF8.self)
        #expect(line.hasSuffix(",ok=3 1\n"))
        #expect(!line.contains("\\") && !line.contains("time=") && !line.contains("ok=4"))
        #expect(drops.badNames == 5)
    }

    @Test func repeatedGaugeNamesAreLeftOutAlsoWhenASampleHasMany() {
        // Past 16 gauges the repeat check goes through a set; same answer as the in-place scan.
        let extra = (0..<40).map { Gauge(name: "g\($0 % 20)", value: Double($0)) }
        let sample = Sample(seq: 1, timestampNs: 1, cpuPercent: 1, memoryPercent: 2, diskPercent: 3, extra: extra)
        var out: [UInt8] = []
        var drops = LineProtocolDrops()
        SystemMetrics.appendLines(node: "n", tenant: "t", labels: [], samples: [(sample, 0.5, false)], to: &out, drops: &drops)
        let line = String(decoding: out, as: UTF8.self)
        #expect(drops.badNames == 20)
        #expect(line.contains(",g0=0,") && line.contains(",g19=19 ") && !line.contains("g0=20"))
    }

    @Test func namesAreCheckedAtHelloSoEveryAcceptedSampleIsWritable() {
        #expect(MetricNames.nodeIDProblem("web-1") == nil)
        #expect(MetricNames.nodeIDProblem("node\\") != nil)
        #expect(MetricNames.nodeIDProblem("a\nb") != nil)
        #expect(MetricNames.nodeIDProblem("") != nil)
        #expect(MetricNames.nodeIDProblem(String(repeating: "x", count: 257)) != nil)
        #expect(MetricNames.labelsProblem([Label(key: "rack", value: "r1"), Label(key: "zone", value: "eu west")]) == nil)
        #expect(MetricNames.labelsProblem([Label(key: "k2", value: "a\\")])?.contains("backslash") == true)
        #expect(MetricNames.labelsProblem([Label(key: "k", value: "1"), Label(key: "k", value: "2")])?.contains("twice") == true)
        #expect(MetricNames.labelsProblem([Label(key: "time", value: "1")])?.contains("reserved") == true)
        #expect(MetricNames.labelsProblem([Label(key: "host", value: "spoof")])?.contains("reserved") == true)
        #expect(MetricNames.labelsProblem([Label(key: "_field", value: "x")])?.contains("reserved") == true)
        #expect(MetricNames.labelsProblem([Label(key: "k", value: "")]) != nil)
        #expect(MetricNames.labelsProblem([Label(key: "k", value: String(repeating: "v", count: 257))]) != nil)
        #expect(MetricNames.labelsProblem((0..<33).map { Label(key: "k\($0)", value: "v") }) != nil)
        #expect(MetricNames.labelsProblem((0..<32).map { Label(key: "k\($0)", value: "v") }) == nil)
    }
}
