import ArgumentParser
import GridMonConfig
import GridMonPosix
import GridMonServer

/// `gridmon-stream-server config check FILE`: validates a configuration file as the server
/// would read it, without starting (issue #15, item 3).
struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Tools for the server's TOML configuration file.",
        subcommands: [Check.self])

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check a configuration file (and the environment's GRIDMON_… variables over it) without starting.",
            discussion: """
                Reads FILE as `serve --config FILE` would: every value parsed and checked, every \
                key known, the tokens file, TLS key and model readable. Prints `FILE: ok` and \
                exits 0, or prints the first mistake, naming its key and value, and exits 64.
                """)

        @Argument(help: "The TOML file.")
        var file: String

        func run() throws {
            Settings.shared.load(arguments: ["--config", file], environment: processEnvironment()) { try Files.readText($0, maxBytes: 1 << 20) }
            let server: StreamServer
            do { server = try StreamServer.parse(["--config", file]) } catch {
                throw ValidationError(StreamServer.message(for: error))
            }
            try server.check()
            try server.checkFiles()
            print("\(file): ok")
        }
    }
}

extension StreamServer {
    /// The files the settings name, read as the server will read them: a tokens file others may
    /// read or that does not parse, a missing TLS key, a model that does not load.
    func checkFiles() throws {
        func fail(_ name: String, _ error: Error) -> ValidationError {
            ValidationError("\(Settings.shared.origin(name)): \(error)")
        }
        if !tokensFile.isEmpty {
            do {
                try Self.checkPrivate(tokensFile)
                let tokens = try Authenticator(parsing: try Files.readText(tokensFile))
                if tokens.tokenCount == 0 { throw ConfigError(description: "\(tokensFile) holds no tokens: every agent would be refused") }
            } catch { throw fail("tokens-file", error) }
        }
        if !adminTokensFile.isEmpty {
            do {
                try Self.checkPrivate(adminTokensFile)
                _ = try AdminAuth(parsing: try Files.readText(adminTokensFile))
            } catch { throw fail("admin-tokens-file", error) }
        }
        if !tlsKey.isEmpty {
            do { try Self.checkPrivate(tlsKey) } catch { throw fail("tls-key", error) }
        }
        if !tlsCert.isEmpty {
            do { _ = try Files.read(tlsCert, maxBytes: 1 << 20) } catch { throw fail("tls-cert", error) }
        }
        if !model.isEmpty {
            do {
                if scorer == "temporal" { _ = try loadPrior() } else { _ = try loadModels() }
            } catch { throw fail("model", error) }
        }
    }
}
