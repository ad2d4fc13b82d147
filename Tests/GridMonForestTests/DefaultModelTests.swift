import Foundation
import Testing
@testable import GridMonForest

@Suite struct DefaultModelTests {
    static let committed = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Sources/gridmon-stream-server/Models/default-model.gmf")

    @Test func committedFileIsWhatTheGeneratorMakesBitForBit() throws {
        let bytes = [UInt8](try Data(contentsOf: Self.committed))
        // (A Bool, so a mismatch does not print two 50 KB arrays.)
        let same = ModelFile.encode(DefaultModel.make()) == bytes
        #expect(same, "run Tools/make-default-model and commit the result")
    }

    @Test func flagsAnOverloadedServerAndNotAHealthyOne() throws {
        let model = DefaultModel.make()
        #expect(model.score([99, 97, 99]) >= model.threshold)
        #expect(model.score([100, 30, 40]) >= model.threshold)
        #expect(model.score([30, 50, 50]) < model.threshold)
        // About 1 % of the healthy training rows sit above the threshold (contamination 0.01).
        let rows = DefaultModel.trainingRows()
        let flagged = model.scores(FeatureMatrix(columns: 3, rows: rows)).filter { $0 >= model.threshold }.count
        #expect(flagged >= 90 && flagged <= 110)
    }
}
