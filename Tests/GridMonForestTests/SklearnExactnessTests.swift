import Foundation
import GridMonForest
import Testing

private let python = ProcessInfo.processInfo.environment["GRIDMON_PYTHON"]
private let required = ProcessInfo.processInfo.environment["GRIDMON_REQUIRE_INTEROP"] == "1"

/// GridMon scores a converted scikit-learn model exactly as scikit-learn does, on real data.
///
/// Needs GRIDMON_PYTHON with scikit-learn (Tools/test provides it). The two servers' data are
/// vendored under `Fixtures/asd` (the repository's tests need nothing beside it).
@Suite(.enabled(if: python != nil || required))
struct SklearnExactnessTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let asd = repository.appendingPathComponent("Tests/GridMonForestTests/Fixtures/asd")

    @Test(arguments: ["omi-1", "omi-8"])
    func scoresEqualScikitLearnsScoreSamples(server: String) throws {
        let python = try #require(python, "GRIDMON_REQUIRE_INTEROP=1 but GRIDMON_PYTHON is not set")
        let data = Self.asd.appendingPathComponent(server)
        try #require(FileManager.default.fileExists(atPath: data.appendingPathComponent("train.csv").path),
                     "no \(data.path): the vendored fixture is missing")
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("gridmon-sklearn-\(UUID())")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }

        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [Self.repository.appendingPathComponent("Tests/GridMonForestTests/Sklearn/exactness.py").path,
                             data.appendingPathComponent("train.csv").path, data.appendingPathComponent("test.csv").path,
                             work.path, Self.repository.path]
        try process.run()
        process.waitUntilExit()
        try #require(process.terminationStatus == 0, "the scikit-learn side failed")

        let forest = try ModelFile.decode([UInt8](try Data(contentsOf: work.appendingPathComponent("model.gmf"))))
        #expect(forest.trees.count == 100 && forest.subsampleSize == 256)
        let table = try CSVTable(parsing: String(contentsOf: data.appendingPathComponent("test.csv"), encoding: .utf8), file: "test.csv")
        let scores = forest.scores(try table.matrix(columns: forest.features, file: "test.csv"))
        let expected = try String(contentsOf: work.appendingPathComponent("expected.txt"), encoding: .utf8)
            .split(separator: "\n").map { Double($0)! }
        #expect(scores.count == expected.count && scores.count == 4320)
        let worst = zip(scores, expected).map { abs($0 - $1) }.max() ?? .infinity
        #expect(worst <= 1e-9, "largest difference \(worst)")
    }
}
