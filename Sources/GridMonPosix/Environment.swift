import Glibc

/// The value of environment variable `name`, if set: every command-line flag of GridMon has a
/// `GRIDMON_…` twin read through this.
public func environment(_ name: String) -> String? {
    getenv(name).map { String(cString: $0) }
}

/// Every environment variable of the process (the settings' lower layers take a snapshot).
public func processEnvironment() -> [String: String] {
    var result: [String: String] = [:]
    var entry = environ
    while let pointer = entry.pointee {
        let text = String(cString: pointer)
        if let equals = text.firstIndex(of: "=") {
            result[String(text[..<equals])] = String(text[text.index(after: equals)...])
        }
        entry += 1
    }
    return result
}
