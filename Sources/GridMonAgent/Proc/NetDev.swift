/// /proc/net/dev: traffic counters per network interface. Pure. Format: proc(5).

/// Cumulative counters of one interface since it came up.
public struct InterfaceCounters: Equatable, Sendable {
    public var name: String
    public var bytesRecv: UInt64, packetsRecv: UInt64, errIn: UInt64, dropIn: UInt64
    public var bytesSent: UInt64, packetsSent: UInt64, errOut: UInt64, dropOut: UInt64

    public init(name: String, bytesRecv: UInt64 = 0, packetsRecv: UInt64 = 0, errIn: UInt64 = 0, dropIn: UInt64 = 0,
                bytesSent: UInt64 = 0, packetsSent: UInt64 = 0, errOut: UInt64 = 0, dropOut: UInt64 = 0) {
        (self.name, self.bytesRecv, self.packetsRecv, self.errIn, self.dropIn) = (name, bytesRecv, packetsRecv, errIn, dropIn)
        (self.bytesSent, self.packetsSent, self.errOut, self.dropOut) = (bytesSent, packetsSent, errOut, dropOut)
    }
}

/// Every interface of /proc/net/dev, in file order (loopback included; callers choose).
///
/// A line is `name: rx_bytes rx_packets rx_errs rx_drop fifo frame compressed multicast
/// tx_bytes tx_packets tx_errs tx_drop …`; long names may touch the colon.
public func interfaceCounters(netDev text: Substring) -> [InterfaceCounters] {
    var result: [InterfaceCounters] = []
    for line in text.split(separator: "\n") {
        guard let colon = line.firstIndex(of: ":") else { continue }
        let name = line[..<colon].trimmingCharacters(in: " ")
        guard !name.isEmpty else { continue }
        let f = line[line.index(after: colon)...].split(separator: " ").compactMap { UInt64($0) }
        guard f.count >= 12 else { continue }
        result.append(InterfaceCounters(name: name, bytesRecv: f[0], packetsRecv: f[1], errIn: f[2], dropIn: f[3],
                                        bytesSent: f[8], packetsSent: f[9], errOut: f[10], dropOut: f[11]))
    }
    return result
}

/// Bytes received and transmitted over all interfaces but loopback (the fixed gauges).
public func networkTotals(_ interfaces: [InterfaceCounters]) -> (rx: UInt64, tx: UInt64) {
    var rx: UInt64 = 0
    var tx: UInt64 = 0
    for counters in interfaces where counters.name != "lo" {
        rx &+= counters.bytesRecv
        tx &+= counters.bytesSent
    }
    return (rx, tx)
}

extension Substring {
    func trimmingCharacters(in set: Character) -> String {
        var s = self
        while s.first == set { s.removeFirst() }
        while s.last == set { s.removeLast() }
        return String(s)
    }
}
