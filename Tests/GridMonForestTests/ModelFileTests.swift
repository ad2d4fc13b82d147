import GridMonCore
import Testing
@testable import GridMonForest

@Suite struct ModelFileTests {
    let forest: IsolationForest = {
        let (data, _) = clusterWithOutliers()
        var options = FitOptions()
        options.trees = 10
        options.seed = 3
        options.source = "unit test"
        return IsolationForest.fit(data, features: ["x", "y"], options: options, createdUnix: 1_700_000_000)
    }()

    @Test func roundTripsEverything() throws {
        let bytes = ModelFile.encode(forest)
        let loaded = try ModelFile.decode(bytes)
        #expect(loaded.features == ["x", "y"] && loaded.nodes == forest.nodes && loaded.leafValues == forest.leafValues)
        #expect(loaded.trees == forest.trees && loaded.threshold == forest.threshold && loaded.metadata == forest.metadata)
        #expect(ModelFile.encode(loaded) == bytes)
        #expect(loaded.score([9, 9]) == forest.score([9, 9]))
    }

    @Test func everyTruncationIsAnErrorNotACrash() {
        let bytes = ModelFile.encode(forest)
        for length in stride(from: 0, to: bytes.count, by: 7) {
            #expect(throws: ModelFileError.self) { try ModelFile.decode(Array(bytes.prefix(length))) }
        }
    }

    @Test func flippedBitsFailTheChecksum() {
        var bytes = ModelFile.encode(forest)
        bytes[bytes.count / 2] ^= 0x10
        #expect {
            try ModelFile.decode(bytes)
        } throws: { error in
            if case .checksumMismatch = error as? ModelFileError { return true }
            return false
        }
    }

    @Test func otherVersionsAndOtherFilesAreNamed() {
        #expect(throws: ModelFileError.notAModel) { try ModelFile.decode(Array("feature,other\n1,2\n".utf8)) }
        var bytes = ModelFile.encode(forest)
        bytes[8] = 2
        #expect(throws: ModelFileError.unsupportedVersion(2)) { try ModelFile.decode(bytes) }
    }

    @Test func wrongFeatureSetIsRefused() {
        #expect(throws: ModelFileError.featureMismatch(model: ["x", "y"], wanted: ["cpu", "memory"])) {
            try ModelFile.decode(ModelFile.encode(forest), expectedFeatures: ["cpu", "memory"])
        }
    }

    /// Rewrites one node field and fixes the checksum, so validation (not the CRC) must catch it.
    private func tamper(_ offsetInNode: Int, node: Int, value: UInt32) -> [UInt8] {
        var bytes = ModelFile.encode(forest)
        bytes.removeLast(4)
        let headerLength = Int(bytes[12]) | Int(bytes[13]) << 8 | Int(bytes[14]) << 16 | Int(bytes[15]) << 24
        let position = 16 + headerLength + 4 + node * 24 + offsetInNode
        withUnsafeBytes(of: value.littleEndian) { for (i, b) in $0.enumerated() { bytes[position + i] = b } }
        let crc = CRC32C.checksum(bytes)
        withUnsafeBytes(of: crc.littleEndian) { bytes.append(contentsOf: $0) }
        return bytes
    }

    @Test func structuralDamageIsCaughtEvenWithAValidChecksum() {
        // Root's left child pointing back at the root: a cycle.
        #expect(throws: ModelFileError.badNode(tree: 0, node: 0, "children 0, 2 must be distinct and after the node")) {
            try ModelFile.decode(tamper(8, node: 0, value: 0))
        }
        // Root split on feature 9 of 2.
        #expect(throws: ModelFileError.badNode(tree: 0, node: 0, "feature 9 out of range")) {
            try ModelFile.decode(tamper(4, node: 0, value: 9))
        }
        // Child index past the tree.
        #expect(throws: ModelFileError.self) { try ModelFile.decode(tamper(12, node: 0, value: 100_000)) }
    }

    /// A file with a header and one announced tree of `count` zeroed nodes, checksummed.
    private func file(header text: String, nodes count: Int = 0) -> [UInt8] {
        var bytes = Array(ModelFile.magic)
        withUnsafeBytes(of: UInt32(1).littleEndian) { bytes.append(contentsOf: $0) }
        let header = Array(text.utf8)
        withUnsafeBytes(of: UInt32(header.count).littleEndian) { bytes.append(contentsOf: $0) }
        bytes += header
        if count > 0 {
            withUnsafeBytes(of: UInt32(count).littleEndian) { bytes.append(contentsOf: $0) }
            bytes += [UInt8](repeating: 0, count: count * 24)
        }
        let crc = CRC32C.checksum(bytes)
        withUnsafeBytes(of: crc.littleEndian) { bytes.append(contentsOf: $0) }
        return bytes
    }

    /// What a forest's packed nodes cannot hold is refused before anything is built (before
    /// issue #17 the loader trapped on more than 2^20 nodes or `subsample 1e300`, and scored
    /// a feature past 4,096 as another one).
    @Test func limitsOfTheScoringLayoutAreErrorsNotTraps() {
        let wide = "features 5000\n" + (0..<5000).map { "feature f\($0)\n" }.joined() + "threshold 0.5\nsubsample 256\ntrees 1\n"
        #expect(throws: ModelFileError.badHeader("5000 features, at most 4096")) { try ModelFile.decode(file(header: wide)) }
        #expect(throws: ModelFileError.badHeader("subsample 1e300 is too large")) {
            try ModelFile.decode(file(header: "features 1\nfeature x\nthreshold 0.5\nsubsample 1e300\ntrees 1\n"))
        }
        let huge = file(header: "features 1\nfeature x\nthreshold 0.5\nsubsample 256\ntrees 1\n", nodes: 1 << 20)
        #expect(throws: ModelFileError.badNode(tree: 0, node: (1 << 20) - 1, "the trees have more than 1048575 nodes in all")) {
            try ModelFile.decode(huge)
        }
    }

    @Test func headerProblemsAreNamed() {
        var bytes = Array(ModelFile.magic)
        withUnsafeBytes(of: UInt32(1).littleEndian) { bytes.append(contentsOf: $0) }
        let header = Array("features 2\nfeature x\nthreshold 2.5\nsubsample 256\ntrees 1\n".utf8)
        withUnsafeBytes(of: UInt32(header.count).littleEndian) { bytes.append(contentsOf: $0) }
        bytes += header
        let crc = CRC32C.checksum(bytes)
        withUnsafeBytes(of: crc.littleEndian) { bytes.append(contentsOf: $0) }
        #expect(throws: ModelFileError.badHeader("features says 2, 1 feature lines")) { try ModelFile.decode(bytes) }
    }
}

@Suite struct CSVTableTests {
    @Test func parsesHeaderAndRows() throws {
        let table = try CSVTable(parsing: "cpu, memory\r\n1,2\n3.5 ,4e2\n\n", file: "t.csv")
        #expect(table.columns == ["cpu", "memory"] && table.rows == [[1, 2], [3.5, 400]])
        let m = try table.matrix(columns: ["memory"], file: "t.csv")
        #expect(m.columns == 1 && m.values == [2, 400])
    }

    @Test func badFilesNameFileLineAndColumn() {
        func error(_ text: String) -> String {
            do { _ = try CSVTable(parsing: text, file: "d.csv"); return "" } catch { return error.description }
        }
        #expect(error("") == "d.csv: empty file (expected a header row)")
        #expect(error("a,b\n") == "d.csv: no data rows after the header")
        #expect(error("a,b\n1,2\n3\n") == "d.csv:3: 1 fields, the header has 2")
        #expect(error("a,b\n1,x\n") == "d.csv:2: column b: 'x' is not a finite number")
        #expect(error("a,b\n1,nan\n") == "d.csv:2: column b: 'nan' is not a finite number")
        #expect(error("1,2\n3,4\n") == "d.csv:1: the first row is all numbers: a header row is required")
        #expect(error("a,a\n1,2\n") == "d.csv:1: header repeats a column name")
        #expect(throws: CSVTable.ParseError(file: "d.csv", line: 1, reason: "no column 'c' (columns: a, b)")) {
            try CSVTable(parsing: "a,b\n1,2\n", file: "d.csv").matrix(columns: ["c"], file: "d.csv")
        }
    }
}
