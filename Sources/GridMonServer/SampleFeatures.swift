import GridMonWire

/// Reads a model's named features out of a `Sample`.
///
/// Names: `cpu`, `memory`, `disk`, `load1`, `net_rx`, `net_tx`, `disk_read`, `disk_write`
/// (the fixed fields, as the stored points name them), or the name of an extra gauge. A gauge
/// the sample does not carry reads as NaN, which every split sends the same way. Pure.
public struct SampleFeatures: Sendable {
    enum Source: Sendable {
        case cpu, memory, disk, load1, netRx, netTx, diskRead, diskWrite
        case gauge(String)
    }

    public let names: [String]
    let sources: [Source]

    public init(_ names: [String]) {
        self.names = names
        sources = names.map { name in
            switch name {
            case "cpu": .cpu
            case "memory": .memory
            case "disk": .disk
            case "load1": .load1
            case "net_rx": .netRx
            case "net_tx": .netTx
            case "disk_read": .diskRead
            case "disk_write": .diskWrite
            default: .gauge(name)
            }
        }
    }

    /// Appends the features of `sample` to `out` as Float32 (the forests' input type).
    @inline(__always)
    public func append(_ sample: Sample, to out: inout [Float]) {
        for source in sources {
            let value: Double = switch source {
            case .cpu: sample.cpuPercent
            case .memory: sample.memoryPercent
            case .disk: sample.diskPercent
            case .load1: sample.load1
            case .netRx: sample.netRxBytesPerSec
            case .netTx: sample.netTxBytesPerSec
            case .diskRead: sample.diskReadBytesPerSec
            case .diskWrite: sample.diskWriteBytesPerSec
            case .gauge(let name): sample.extra.first { $0.name == name }?.value ?? .nan
            }
            out.append(Float(value))
        }
    }
}
