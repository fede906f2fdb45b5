"""Choose LossDiagnoser defaults on synthetic losses over several seeds, dims and sizes.

Varies one setting at a time around the current defaults and prints the mean held-out Spearman
(rank/regress) per setting, plus ridge/kNN baselines on the same data, and the familiarity AUROC of
"random" vs "moments" negatives (held-out data vs unseen concept clusters). Slow (minutes); run
by hand: `.venv/bin/python benchmarks/tune_core.py [--quick]`.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr
from sklearn.linear_model import RidgeCV
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import KNeighborsRegressor

sys.path.insert(0, str(Path(__file__).parent))
import core_synthetic as synthetic  # noqa: E402

from llm2loss import LossDiagnoser  # noqa: E402

VARIANTS = {
    "default": {},
    "hidden=64": {"hidden": 64}, "hidden=256": {"hidden": 256},
    "lr=3e-3": {"lr": 3e-3}, "wd=0.1": {"weight_decay": 0.1},
    "batch=512": {"batch_size": 512}, "patience=10": {"patience": 10},
}
MODELS = [("rank", "mlp"), ("rank", "linear"), ("regress", "mlp"), ("regress", "linear")]


def datasets(quick: bool):
    sizes = [500, 3000] if quick else [500, 3000, 12000]
    seeds = [0] if quick else [0, 1]
    for kind, dim in (("nonlinear", 384), ("planted", 512)):
        for n, seed in itertools.product(sizes, seeds):
            X, loss = synthetic.make(kind, n + 2000, dim, seed)
            yield f"{kind}-{dim}-n{n}-s{seed}", X[:n], loss[:n], X[n:], loss[n:]


def tune_supervised(quick: bool) -> None:
    scores: dict[tuple[str, str], list[float]] = {}
    for name, Xtr, ltr, Xte, lte in datasets(quick):
        t0 = time.perf_counter()
        ridge = RidgeCV(alphas=np.logspace(-2, 3, 12)).fit(Xtr, ltr).predict(Xte)
        knn = KNeighborsRegressor(20, weights="distance").fit(Xtr, ltr).predict(Xte)
        scores.setdefault(("ridge", "-"), []).append(spearmanr(ridge, lte)[0])
        scores.setdefault(("knn", "-"), []).append(spearmanr(knn, lte)[0])
        for (obj, arch), (vname, kw) in itertools.product(MODELS, VARIANTS.items()):
            if arch == "linear" and vname.startswith("hidden"):
                continue
            d = LossDiagnoser(obj, arch, **kw).fit(Xtr, ltr)
            scores.setdefault((f"{obj}-{arch}", vname), []).append(
                spearmanr(d.predict(Xte), lte)[0])
        print(f"{name}: {time.perf_counter() - t0:.0f}s", flush=True)
    print("\nmean held-out Spearman over data sets")
    for (model, vname), vals in sorted(scores.items()):
        print(f"{model:15s} {vname:12s} {np.mean(vals):.4f}  min {np.min(vals):.3f}")


def tune_familiarity(quick: bool) -> None:
    res: dict[str, list[float]] = {}
    for seed, dim in itertools.product([0] if quick else [0, 1, 2], (384, 512)):
        rng = np.random.default_rng(seed)
        X, _, assign = synthetic.embeddings(6000, dim, rng)
        seen = assign < 20
        Xin, Xout = X[seen], X[~seen]
        for neg, arch in itertools.product(("random", "moments"), ("linear", "mlp")):
            d = LossDiagnoser("familiarity", arch, negatives=neg).fit(Xin[:3000])
            s_in, s_out = d.predict(Xin[3000:]), d.predict(Xout)
            auc = roc_auc_score(np.r_[np.ones(len(s_in)), np.zeros(len(s_out))], np.r_[s_in, s_out])
            res.setdefault(f"{neg}-{arch}", []).append(auc)
    print("\nfamiliarity AUROC, held-out data vs unseen concepts")
    for k, v in res.items():
        print(f"{k:16s} {np.mean(v):.4f}  min {np.min(v):.3f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", choices=["supervised", "familiarity"])
    a = ap.parse_args()
    if a.only != "familiarity":
        tune_supervised(a.quick)
    if a.only != "supervised":
        tune_familiarity(a.quick)
