import GridMonCore
import Synchronization

/// Where each setting of a command comes from: the command line, then its `GRIDMON_…`
/// variable, then the configuration file, then the built-in default (issue #15, item 3).
///
/// The command line is ArgumentParser's; this type serves the other three layers to the
/// options' default values, which ArgumentParser evaluates while it parses. A value that does
/// not parse is not dropped silently (`GRIDMON_THREADS=many` once ran with 2 threads): it is
/// recorded as a problem naming its variable or file key and its text, which the command
/// reports (exit 64) before it starts. Keys of the file no option asked for are mistakes too
/// (`unknownKeys`).
///
/// Names: an option `--max-connections` reads `GRIDMON_MAX_CONNECTIONS` and the file key
/// `max_connections` (or `max-connections`; a `[table]` prefixes its keys: `[influx] url` is
/// `influx_url`).
///
/// Threading: one instance per process (`shared`), loaded once in `main` before parsing;
/// every access takes its lock.
public final class Settings: Sendable {
    public static let shared = Settings()

    private struct State {
        var arguments: [String] = []
        var environment: [String: String] = [:]
        var file: ConfigFile?
        var consulted: Set<String> = []
        var problems: [String] = []
    }
    private let state = Mutex(State())

    public init() {}

    /// Takes the process's arguments and environment, and the configuration file named by
    /// `--config FILE` among the arguments or by `GRIDMON_CONFIG` (a file that cannot be read
    /// or parsed is a problem, reported like a bad value).
    public func load(arguments: [String], environment: [String: String], readFile: (String) throws -> String) {
        var path: String?
        for (i, argument) in arguments.enumerated() {
            if argument == "--config", i + 1 < arguments.count { path = arguments[i + 1] }
            if argument.hasPrefix("--config=") { path = String(argument.dropFirst("--config=".count)) }
        }
        if path == nil { path = environment["GRIDMON_CONFIG"] }
        var file: ConfigFile?
        var problem: String?
        if let path {
            do { file = try ConfigFile(path: path, text: try readFile(path)) } catch {
                problem = "\(path): \(error)"
            }
        }
        state.withLock {
            $0 = State()
            $0.arguments = arguments
            $0.environment = environment
            $0.file = file
            if let problem { $0.problems.append(problem) }
        }
    }

    /// The configuration file in use, if any.
    public var filePath: String? { state.withLock { $0.file?.path } }

    /// `GRIDMON_` and the option's name in capitals with `_` for `-`.
    public static func variable(_ name: String) -> String {
        "GRIDMON_" + String(name.uppercased().map { $0 == "-" ? "_" : $0 })
    }

    /// The text of option `name` from its variable, else from the file, with the key that
    /// names its origin in errors; nil when neither gives it.
    public func text(_ name: String, variable: String? = nil) -> (text: String, key: String)? {
        let variable = variable ?? Self.variable(name)
        return state.withLock { state in
            state.consulted.insert(ConfigFile.key(name))
            if let value = state.environment[variable] { return (value, variable) }
            if let file = state.file, let value = file.values[ConfigFile.key(name)] {
                return (value.joined(separator: ","), "\(file.path): \(ConfigFile.key(name))")
            }
            return nil
        }
    }

    /// A list option: the variable's comma-separated items, else the file's array (or string).
    public func list(_ name: String, variable: String? = nil) -> [String]? {
        let variable = variable ?? Self.variable(name)
        return state.withLock { state in
            state.consulted.insert(ConfigFile.key(name))
            if let value = state.environment[variable] { return SettingValues.list(value) }
            return state.file?.values[ConfigFile.key(name)]
        }
    }

    /// Option `name`'s value from the lower layers, parsed by `convert`, else `fallback`. A
    /// text `convert` refuses is recorded as a problem (`expected` says what was wanted).
    public func value<T>(_ name: String, _ fallback: T, variable: String? = nil, expected: String, _ convert: (String) -> T?) -> T {
        guard let (text, key) = text(name, variable: variable) else { return fallback }
        guard let parsed = convert(text) else {
            // The command line's value replaces this one: not a mistake that stops the start.
            if !onCommandLine(name) { record("\(key): expected \(expected), got '\(text)'") }
            return fallback
        }
        return parsed
    }

    public func string(_ name: String, _ fallback: String, variable: String? = nil) -> String {
        text(name, variable: variable)?.text ?? fallback
    }

    public func int<T: FixedWidthInteger>(_ name: String, _ fallback: T, variable: String? = nil) -> T {
        value(name, fallback, variable: variable, expected: "an integer") { T($0.trimmingSpaces()) }
    }

    public func double(_ name: String, _ fallback: Double, variable: String? = nil) -> Double {
        value(name, fallback, variable: variable, expected: "a number") { Double($0.trimmingSpaces()).flatMap { $0.isFinite ? $0 : nil } }
    }

    /// A switch: true/false, 1/0, yes/no, on/off.
    public func bool(_ name: String, variable: String? = nil) -> Bool {
        value(name, false, variable: variable, expected: "true or false", SettingValues.bool)
    }

    /// How to name option `name` in an error: the flag if the command line gave it, else the
    /// variable or file key its value came from, else the flag.
    public func origin(_ name: String, variable: String? = nil) -> String {
        if onCommandLine(name) { return "--" + name }
        return text(name, variable: variable)?.key ?? "--" + name
    }

    /// Whether the command line gives `--name`.
    public func onCommandLine(_ name: String) -> Bool {
        let flag = "--" + name
        return state.withLock { $0.arguments.contains { $0 == flag || $0.hasPrefix(flag + "=") } }
    }

    public func record(_ problem: String) {
        state.withLock { if !$0.problems.contains(problem) { $0.problems.append(problem) } }
    }

    /// Bad values and unreadable files met so far, in order.
    public var problems: [String] { state.withLock { $0.problems } }

    /// Keys of the file that no option asked for (misspelt, or of another command).
    public func unknownKeys() -> [String] {
        state.withLock { state in
            guard let file = state.file else { return [] }
            return file.values.keys.filter { !state.consulted.contains($0) }.sorted()
        }
    }

    /// The first problem, unknown keys included, as one message; nil when all is well.
    public func firstProblem() -> String? {
        if let first = problems.first { return first }
        let unknown = unknownKeys()
        guard let key = unknown.first, let path = filePath else { return nil }
        return "\(path): unknown key '\(key)'" + (unknown.count > 1 ? " (and \(unknown.count - 1) more: \(unknown.dropFirst().joined(separator: ", ")))" : "")
    }
}
