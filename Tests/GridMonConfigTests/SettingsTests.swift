import GridMonConfig
import Testing

@Suite struct ConfigFileTests {
    @Test func tablesPrefixTheirKeysAndScalarsBecomeText() throws {
        let file = try ConfigFile(path: "s.toml", text: """
            # a comment
            max-connections = 100
            threads = 2
            insecure_no_auth = true
            node_threshold = 1.5
            webhook_url = ["https://a.example/hook", "acme=https://b.example/hook"]
            [influx]
            url = "http://127.0.0.1:8086"
            db = "gridmon_{tenant}"
            """)
        #expect(file.values["max_connections"] == ["100"])
        #expect(file.values["threads"] == ["2"])
        #expect(file.values["insecure_no_auth"] == ["true"])
        #expect(file.values["node_threshold"] == ["1.5"])
        #expect(file.values["webhook_url"] == ["https://a.example/hook", "acme=https://b.example/hook"])
        #expect(file.values["influx_url"] == ["http://127.0.0.1:8086"])
        #expect(file.values["influx_db"] == ["gridmon_{tenant}"])
    }

    @Test func syntaxErrorsSayWhere() {
        #expect(throws: ConfigFile.Problem.self) { try ConfigFile(path: "x", text: "threads = \n") }
        do {
            _ = try ConfigFile(path: "x", text: "listen = \"a\"\nthreads = = 2\n")
            Issue.record("parsed")
        } catch {
            #expect(error.description.contains("line 2"), "\(error)")
        }
    }

    @Test func valuesThatAreNotSettingsAreRefused() {
        #expect(throws: ConfigFile.Problem.self) { try ConfigFile(path: "x", text: "when = 1979-05-27T07:32:00Z\n") }
        #expect(throws: ConfigFile.Problem.self) { try ConfigFile(path: "x", text: "a = [[1, 2], [3]]\n") }
        #expect(throws: ConfigFile.Problem.self) { try ConfigFile(path: "x", text: "influx_url = \"a\"\n[influx]\nurl = \"b\"\n") }
    }
}

@Suite struct SettingsTests {
    func settings(_ arguments: [String] = [], env: [String: String] = [:], file: String? = nil) -> Settings {
        let settings = Settings()
        var args = arguments
        if file != nil { args += ["--config", "s.toml"] }
        settings.load(arguments: args, environment: env) { _ in file ?? "" }
        return settings
    }

    @Test func aVariableWinsOverTheFileWhichWinsOverTheDefault() {
        let s = settings(env: ["GRIDMON_THREADS": "3"], file: "threads = 2\nmax_nodes = 7\n")
        #expect(s.int("threads", 0) == 3)
        #expect(s.int("max-nodes", 1) == 7)
        #expect(s.int("max-streams", 9) == 9)
        #expect(s.problems.isEmpty)
        #expect(s.unknownKeys().isEmpty)
    }

    @Test func badValuesAreRecordedNamingVariableOrKeyAndText() {
        let s = settings(env: ["GRIDMON_THREADS": "many"], file: "max_nodes = \"lots\"\ninsecure_no_auth = \"maybe\"\n")
        #expect(s.int("threads", 2) == 2)
        #expect(s.int("max-nodes", 1) == 1)
        #expect(s.bool("insecure-no-auth") == false)
        #expect(s.problems == ["GRIDMON_THREADS: expected an integer, got 'many'",
                               "s.toml: max_nodes: expected an integer, got 'lots'",
                               "s.toml: insecure_no_auth: expected true or false, got 'maybe'"])
    }

    @Test func aFlagOnTheCommandLineReplacesABadVariableWithoutComplaint() {
        let s = settings(["gridmon-stream-server", "--threads", "1"], env: ["GRIDMON_THREADS": "many"])
        _ = s.int("threads", 2)
        #expect(s.problems.isEmpty)
        #expect(s.origin("threads") == "--threads")
    }

    @Test func originNamesWhereTheValueCameFrom() {
        let s = settings(env: ["GRIDMON_LISTEN": ":1"], file: "store = \"none\"\n")
        #expect(s.origin("listen") == "GRIDMON_LISTEN")
        #expect(s.origin("store") == "s.toml: store")
        #expect(s.origin("threads") == "--threads")
        #expect(s.origin("alertmanager-url", variable: "GRIDMON_ALERTMANAGER_URLS") == "--alertmanager-url")
    }

    @Test func keysNoOptionAskedForAreUnknown() {
        let s = settings(file: "thread = 2\nlisten = \":7070\"\n")
        _ = s.string("listen", "")
        _ = s.int("threads", 0)
        #expect(s.unknownKeys() == ["thread"])
        #expect(s.firstProblem() == "s.toml: unknown key 'thread'")
    }

    @Test func listsComeFromCommaSeparatedVariablesOrFileArrays() {
        #expect(settings(env: ["GRIDMON_SERVER": "a:1, b:2"]).list("server") == ["a:1", "b:2"])
        #expect(settings(file: "server = [\"a:1\", \"b:2\"]\n").list("server") == ["a:1", "b:2"])
        #expect(settings(file: "server = \"a:1\"\n").list("server") == ["a:1"])
        #expect(settings().list("server") == nil)
    }

    @Test func anUnreadableOrBrokenFileIsAProblem() {
        let unreadable = Settings()
        struct Missing: Error, CustomStringConvertible { var description: String { "No such file or directory" } }
        unreadable.load(arguments: ["--config=/nope.toml"], environment: [:]) { _ in throw Missing() }
        #expect(unreadable.firstProblem() == "/nope.toml: No such file or directory")
        let broken = settings(file: "threads = = 2\n")
        #expect(broken.firstProblem()?.hasPrefix("s.toml: line 1") == true)
        let byVariable = Settings()
        byVariable.load(arguments: [], environment: ["GRIDMON_CONFIG": "v.toml"]) { _ in "threads = 4\n" }
        #expect(byVariable.int("threads", 0) == 4)
        #expect(byVariable.filePath == "v.toml")
    }
}
