import Glibc

/// The value of environment variable `name`, if set: every command-line flag of GridMon has a
/// `GRIDMON_…` twin read through this.
public func environment(_ name: String) -> String? {
    getenv(name).map { String(cString: $0) }
}
