/// The average path length of an unsuccessful search in a binary search tree of `n` points,
/// c(n) = 2 H(n−1) − 2 (n−1)/n (Liu, Ting and Zhou, "Isolation Forest", ICDM 2008, eq. 1).
///
/// Written as scikit-learn's `_average_path_length` computes it, H(i) ≈ ln(i) + γ, with
/// c(1) = c(0) = 0 and c(2) = 1, so scores agree with `IsolationForest.score_samples` to the
/// last bits.
@inlinable
public func averagePathLength(_ n: Int) -> Double {
    if n <= 1 { return 0 }
    if n == 2 { return 1 }
    let m = Double(n)
    return 2.0 * (log(m - 1.0) + eulerGamma) - 2.0 * (m - 1.0) / m
}

/// The Euler–Mascheroni constant γ (numpy's `np.euler_gamma`).
public let eulerGamma = 0.5772156649015329

#if canImport(Glibc)
import Glibc
#endif
