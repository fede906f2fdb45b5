"""Choose LossDiagnoser defaults on synthetic losses over several seeds, dims and sizes.

Varies one setting at a time around the current defaults and prints the mean held-out Spearman
(rank/regress) per setting, plus ridge/kNN baselines on the same data, and the familiarity AUROC of
"random" vs "moments" negatives (held-out data vs unseen concept clusters). Writes the
`## Core: default tuning` section of benchmarks/RESULTS.md. Slow (tens of minutes); run by hand:
`.venv/bin/python benchmarks/tune_core.py [--quick] [--sizes 1000 4000] [--seeds 0 1 2] [--no-write]`.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
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
from results_md import write_section  # noqa: E402

from llm2loss import LossDiagnoser  # noqa: E402

VARIANTS = {
    "default": {},
    "hidden=32": {"hidden": 32}, "hidden=256": {"hidden": 256},
    "lr=3e-4": {"lr": 3e-4}, "lr=3e-3": {"lr": 3e-3},
    "wd=0": {"weight_decay": 0.0}, "wd=0.1": {"weight_decay": 0.1},
    "batch=128": {"batch_size": 128}, "batch=512": {"batch_size": 512},
    "patience=10": {"patience": 10},
    "pairs=all": {"pair_group": None}, "pairs=32": {"pair_group": 32},
}
MODELS = [("rank", "mlp"), ("rank", "linear"), ("regress", "mlp"), ("regress", "linear")]


def datasets(sizes: list[int], seeds: list[int]):
    for kind, dim in (("nonlinear", 384), ("planted", 512)):
        for n, seed in itertools.product(sizes, seeds):
            X, loss = synthetic.make(kind, n + 2000, dim, seed)
            yield f"{kind}-{dim}-n{n}-s{seed}", X[:n], loss[:n], X[n:], loss[n:]


def tune_supervised(sizes: list[int], seeds: list[int]) -> dict[tuple[str, str], list[float]]:
    """Held-out Spearman of every model x variant (and ridge, kNN) on every data set."""
    scores: dict[tuple[str, str], list[float]] = {}
    for name, Xtr, ltr, Xte, lte in datasets(sizes, seeds):
        t0 = time.perf_counter()
        ridge = RidgeCV(alphas=np.logspace(-2, 3, 12)).fit(Xtr, ltr).predict(Xte)
        knn = KNeighborsRegressor(20, weights="distance").fit(Xtr, ltr).predict(Xte)
        scores.setdefault(("ridge", "-"), []).append(spearmanr(ridge, lte)[0])
        scores.setdefault(("knn", "-"), []).append(spearmanr(knn, lte)[0])
        for (obj, arch), (vname, kw) in itertools.product(MODELS, VARIANTS.items()):
            if (arch == "linear" and vname.startswith("hidden")) or (obj != "rank" and vname.startswith("pairs")):
                continue
            d = LossDiagnoser(obj, arch, **kw).fit(Xtr, ltr)
            scores.setdefault((f"{obj}-{arch}", vname), []).append(
                spearmanr(d.predict(Xte), lte)[0])
        print(f"{name}: {time.perf_counter() - t0:.0f}s", flush=True)
    print("\nmean held-out Spearman over data sets")
    for (model, vname), vals in sorted(scores.items()):
        print(f"{model:15s} {vname:12s} {np.mean(vals):.4f}  min {np.min(vals):.3f}")
    return scores


def tune_familiarity(seeds: list[int]) -> dict[str, list[float]]:
    """AUROC of held-out data vs unseen concepts for each negatives x arch."""
    res: dict[str, list[float]] = {}
    for seed, dim in itertools.product(seeds, (384, 512)):
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
    return res


def render(scores: dict[tuple[str, str], list[float]], familiarity: dict[str, list[float]],
           args: argparse.Namespace, minutes: float) -> list[str]:
    """The `## Core: default tuning` section: one row per model x variant, the change from default."""
    n_sets = len(scores.get(("ridge", "-"), []))
    lines = [
        "## Core: default tuning", "",
        f"`benchmarks/tune_core.py --sizes {' '.join(map(str, args.sizes))} --seeds "
        f"{' '.join(map(str, args.seeds))}` on {platform.machine()}, {os.cpu_count()} CPU(s), "
        f"{time.strftime('%Y-%m-%d')}, {minutes:.0f} min. {n_sets} synthetic data sets (kinds nonlinear-384 "
        "and planted-512 x sizes x seeds, 2000 held-out rows each); one setting varied at a time "
        "around the LossDiagnoser defaults (5 members). Cell: held-out Spearman, mean over the data "
        "sets [min]; change = mean of the per-data-set differences from the default, with how many "
        "data sets the variant beat the default on.", "",
        "| model | variant | Spearman mean [min] | change vs default | better on |",
        "|---|---|---|---|---|",
    ]
    for (model, vname), vals in sorted(scores.items()):
        base = scores.get((model, "default"))
        if base is None or vname == "default":
            change, better = "-", "-"
        else:
            diff = np.asarray(vals) - np.asarray(base)
            change, better = f"{diff.mean():+.4f}", f"{int((diff > 0).sum())}/{len(diff)}"
        lines.append(f"| {model} | {vname} | {np.mean(vals):.4f} [{np.min(vals):.3f}] | {change} | {better} |")
    if familiarity:
        lines += ["", "Familiarity, AUROC of held-out data vs unseen concept clusters (6000 samples, "
                  "dims 384 and 512, the seeds above): mean [min].", "",
                  "| negatives-arch | AUROC |", "|---|---|"]
        lines += [f"| {k} | {np.mean(v):.4f} [{np.min(v):.3f}] |" for k, v in familiarity.items()]
    if args.note:
        lines += ["", args.note]
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--quick", action="store_true", help="sizes 500 3000, seed 0")
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 4000])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--only", choices=["supervised", "familiarity"])
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    ap.add_argument("--note", default="", help="a sentence appended to the section")
    a = ap.parse_args()
    if a.quick:
        a.sizes, a.seeds = [500, 3000], [0]
    start = time.perf_counter()
    scores = tune_supervised(a.sizes, a.seeds) if a.only != "familiarity" else {}
    familiarity = tune_familiarity(a.seeds) if a.only != "supervised" else {}
    if not a.no_write:
        print("wrote", write_section(render(scores, familiarity, a, (time.perf_counter() - start) / 60)))


if __name__ == "__main__":
    main()
