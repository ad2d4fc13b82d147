#!/usr/bin/env python3
"""scikit-learn's side of Tools/bench-forest.

    forest_sklearn.py prepare DIR     seeded 3-feature fleet data (train 10,000 rows, test 100,000),
                                      a fitted IsolationForest (100 trees, psi 256) saved and converted
    forest_sklearn.py run DIR ROUNDS  times score_samples on the test rows and the fit on the train rows
Prints `sklearn score samples_per_s=...` and `sklearn fit ms_per_fit=...` (medians, process CPU time).
"""
import subprocess, sys, time
import numpy as np

def prepare(d, repo):
    from sklearn.ensemble import IsolationForest
    import joblib
    rng = np.random.default_rng(42)
    def fleet(n):  # cpu %, memory %, disk %: a busy-ish fleet with some spread
        return np.column_stack([np.clip(rng.normal(35, 12, n), 0, 100), np.clip(rng.normal(55, 8, n), 0, 100),
                                np.clip(rng.normal(62, 5, n), 0, 100)])
    for name, n in (("train", 10_000), ("test", 100_000)):
        np.savetxt(f"{d}/{name}.csv", fleet(n), delimiter=",", header="cpu,memory,disk", comments="", fmt="%.4f")
    X = np.loadtxt(f"{d}/train.csv", delimiter=",", skiprows=1)
    model = IsolationForest(n_estimators=100, max_samples=256, random_state=0).fit(X)
    joblib.dump(model, f"{d}/model.pkl")
    subprocess.run([sys.executable, f"{repo}/Tools/sklearn-to-gridmon", f"{d}/model.pkl", f"{d}/model.gmf",
                    "--features", "cpu,memory,disk"], check=True)

def run(d, rounds):
    from sklearn.ensemble import IsolationForest
    import joblib
    model = joblib.load(f"{d}/model.pkl")
    T = np.loadtxt(f"{d}/test.csv", delimiter=",", skiprows=1)
    X = np.loadtxt(f"{d}/train.csv", delimiter=",", skiprows=1)
    times = []
    for _ in range(rounds):
        t = time.process_time(); model.score_samples(T); times.append(time.process_time() - t)
    print(f"sklearn score samples_per_s={int(len(T) / np.median(times))} rows={len(T)}")
    times = []
    for seed in range(rounds):
        t = time.process_time(); IsolationForest(n_estimators=100, max_samples=256, random_state=seed).fit(X)
        times.append(time.process_time() - t)
    print(f"sklearn fit ms_per_fit={np.median(times) * 1000:.1f} rows={len(X)}")

if __name__ == "__main__":
    if sys.argv[1] == "prepare":
        prepare(sys.argv[2], sys.argv[3])
    else:
        run(sys.argv[2], int(sys.argv[3]))
