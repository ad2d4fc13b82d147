#!/usr/bin/env python3
"""scikit-learn's side of the exactness test.

    exactness.py TRAIN.csv TEST.csv OUTDIR REPO

Fits IsolationForest(n_estimators=100, max_samples=256, random_state=0) on TRAIN, saves it
with joblib, converts it with REPO/Tools/sklearn-to-gridmon into OUTDIR/model.gmf, and
writes -score_samples(TEST) (GridMon's score convention) to OUTDIR/expected.txt, one per
line, with full precision.
"""
import subprocess
import sys

import joblib
import numpy as np
from sklearn.ensemble import IsolationForest

train, test, outdir, repo = sys.argv[1:5]
X = np.loadtxt(train, delimiter=",", skiprows=1)
T = np.loadtxt(test, delimiter=",", skiprows=1)
model = IsolationForest(n_estimators=100, max_samples=256, random_state=0).fit(X)
joblib.dump(model, f"{outdir}/model.pkl")
names = open(train).readline().strip()
subprocess.run([sys.executable, f"{repo}/Tools/sklearn-to-gridmon", f"{outdir}/model.pkl", f"{outdir}/model.gmf",
                "--features", names], check=True)
with open(f"{outdir}/expected.txt", "w") as out:
    for score in -model.score_samples(T):
        out.write(repr(float(score)) + "\n")
