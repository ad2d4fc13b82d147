import Foundation
import GridMonCore
import Testing
@testable import GridMonForest

/// 2-D points: a tight cluster around (0, 0) and a few far away.
func clusterWithOutliers(seed: UInt64 = 7) -> (FeatureMatrix, outliers: [[Double]]) {
    var rng = SplitMix64(seed: seed)
    var matrix = FeatureMatrix(columns: 2)
    for _ in 0..<2000 { matrix.append([rng.nextUnit() - 0.5, rng.nextUnit() - 0.5]) }
    return (matrix, [[8, 8], [-6, 9], [10, -10]])
}

@Suite struct IsolationForestTests {
    @Test func averagePathLengthMatchesTheDefinition() {
        #expect(averagePathLength(0) == 0 && averagePathLength(1) == 0 && averagePathLength(2) == 1)
        // c(256) = 2(ln 255 + γ) − 2·255/256
        let expected: Double = 2 * (log(255.0) + 0.5772156649015329) - 2 * 255.0 / 256
        #expect(abs(averagePathLength(256) - expected) < 1e-15)
    }

    @Test func outliersScoreHighAndInliersLow() {
        let (data, outliers) = clusterWithOutliers()
        let forest = IsolationForest.fit(data, features: ["x", "y"])
        for point in outliers { #expect(forest.score(point) > 0.65, "\(point)") }
        #expect(forest.score([0, 0]) < 0.5)
        let scores = forest.scores(data)
        #expect(scores.allSatisfy { $0 > 0 && $0 < 1 })
        // Uniform data sits near 0.5 (scikit-learn gives 0.514 on the same kind of data).
        #expect(scores.reduce(0, +) / Double(scores.count) < 0.55)
    }

    @Test func sameSeedSameForestOtherSeedOtherForest() {
        let (data, _) = clusterWithOutliers()
        var options = FitOptions()
        options.seed = 42
        let a = IsolationForest.fit(data, features: ["x", "y"], options: options)
        let b = IsolationForest.fit(data, features: ["x", "y"], options: options)
        #expect(ModelFile.encode(a) == ModelFile.encode(b))
        options.seed = 43
        let c = IsolationForest.fit(data, features: ["x", "y"], options: options)
        #expect(ModelFile.encode(a) != ModelFile.encode(c))
    }

    @Test func treesRespectTheDepthLimitAndSubsample() {
        let (data, _) = clusterWithOutliers()
        var options = FitOptions()
        options.trees = 20
        options.subsampleSize = 64
        let forest = IsolationForest.fit(data, features: ["x", "y"], options: options)
        #expect(forest.trees.count == 20 && forest.subsampleSize == 64)
        #expect(forest.trees.allSatisfy { $0.depth <= 6 })  // ⌈log2 64⌉
        #expect(forest.trees.allSatisfy { $0.nodeCount <= 127 })
    }

    @Test func batchScoresEqualOneAtATime() {
        let (data, _) = clusterWithOutliers()
        let forest = IsolationForest.fit(data, features: ["x", "y"])
        let batch = forest.scores(data.selecting(rows: Array(0..<37)))
        for i in 0..<37 { #expect(batch[i] == forest.score([Double(data[i, 0]), Double(data[i, 1])])) }
    }

    /// The scoring layout's walks (eight rows through a tree; one to three rows through
    /// sixteen trees in lockstep, then the rest one by one) against the definition, a walk of
    /// the canonical nodes one tree after another: bit for bit, for tree counts around the
    /// group of sixteen and row counts on both paths (issue #17). Data of a few distinct
    /// points gives trees of unlike depths (duplicates cannot be split), so a group of walks
    /// must step to its deepest tree.
    @Test(arguments: [1, 7, 16, 17, 33, 100], [false, true])
    func scoresEqualAWalkOfTheCanonicalTreesOneByOne(trees: Int, fewDistinct: Bool) {
        var (data, outliers) = clusterWithOutliers(seed: UInt64(trees))
        if fewDistinct {
            var rng = SplitMix64(seed: UInt64(trees))
            data = FeatureMatrix(columns: 2)
            for i in 0..<500 { data.append(i % 50 == 0 ? [rng.nextUnit(), rng.nextUnit()] : [0, 0]) }
        }
        var options = FitOptions()
        options.trees = trees
        options.seed = UInt64(trees)
        let forest = IsolationForest.fit(data, features: ["x", "y"], options: options)
        if fewDistinct && trees > 1 { #expect(Set(forest.trees.map(\.depth)).count > 1) }
        let nodes = forest.nodes, leafValues = forest.leafValues
        func definition(_ x: [Float]) -> Double {
            var sum = 0.0
            for tree in forest.trees {
                var at = tree.root
                while nodes[at].left != nodes[at].right {
                    let node = nodes[at]
                    at = Int(x[Int(node.feature)] <= node.threshold ? node.left : node.right)
                }
                sum += leafValues[at]
            }
            return exp2(sum * (-1.0 / (Double(forest.trees.count) * forest.normalizer)))
        }
        var rows = FeatureMatrix(columns: 2)
        for point in outliers { rows.append(point) }
        for i in 0..<10 { rows.append(floats: [data[i, 0], data[i, 1]][...]) }
        rows.append([Double.nan, 0])
        for count in [1, 2, 3, 8, 13] {
            let scores = forest.scores(rows.selecting(rows: Array(0..<count)))
            for i in 0..<count {
                let expected = definition([rows[i, 0], rows[i, 1]])
                #expect(scores[i].bitPattern == expected.bitPattern, "trees \(trees), \(count) rows, row \(i)")
            }
        }
    }

    @Test func contaminationSetsTheThresholdAtTheTrainingQuantile() {
        let (data, _) = clusterWithOutliers()
        var options = FitOptions()
        options.contamination = 0.1
        let forest = IsolationForest.fit(data, features: ["x", "y"], options: options)
        let flagged = forest.scores(data).filter { $0 >= forest.threshold }.count
        #expect(abs(flagged - 200) <= 2)
    }

    @Test func constantFeaturesAreNeverSplitAndNaNDoesNotCrash() {
        var data = FeatureMatrix(columns: 2)
        for i in 0..<300 { data.append([5, Double(i % 17)]) }
        let forest = IsolationForest.fit(data, features: ["constant", "varying"])
        #expect(forest.nodes.allSatisfy { $0.left == $0.right || $0.feature == 1 })
        let score = forest.score([.nan, .nan])
        #expect(score >= 0 && score <= 1)
    }

    @Test func quantileInterpolatesLikeNumpy() {
        #expect(quantile([1, 2, 3, 4], 0.5) == 2.5)
        #expect(quantile([1, 2, 3, 4], 1) == 4)
        #expect(quantile([3, 1, 2], 0) == 1)
    }
}

@Suite struct DetectionQualityTests {
    @Test func perfectAndInvertedAndTiedRankings() {
        let labels = [false, false, true, true]
        let perfect = DetectionQuality(scores: [0.1, 0.2, 0.8, 0.9], labels: labels)
        #expect(perfect.rocAUC == 1 && perfect.prAUC == 1 && perfect.bestF1 == 1 && perfect.bestThreshold == 0.8)
        let inverted = DetectionQuality(scores: [0.9, 0.8, 0.2, 0.1], labels: labels)
        #expect(inverted.rocAUC == 0)
        let tied = DetectionQuality(scores: [0.5, 0.5, 0.5, 0.5], labels: labels)
        #expect(tied.rocAUC == 0.5 && tied.prAUC == 0.5)
    }

    @Test func matchesScikitLearnOnAKnownCase() {
        // sklearn: roc_auc_score([0,0,1,1,0,1],[.1,.4,.35,.8,.7,.9]) = 0.7777…,
        // average_precision_score(...) = 0.8055…; best F1 0.8 (at 0.35: P 3/5, R 1 → 0.75; at 0.8: P 1, R 2/3 → 0.8).
        let q = DetectionQuality(scores: [0.1, 0.4, 0.35, 0.8, 0.7, 0.9], labels: [false, false, true, true, false, true])
        #expect(abs(q.rocAUC - 7.0 / 9) < 1e-12)
        #expect(abs(q.prAUC - (1.0 / 3 * 1 + 1.0 / 3 * 1 + 1.0 / 3 * 0.6)) < 1e-12)
        #expect(abs(q.bestF1 - 0.8) < 1e-12)
    }
}
