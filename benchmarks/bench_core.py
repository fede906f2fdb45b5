"""Speed of the core: batched ensemble training vs one member after another, and prediction.

- fit: a 5-member MLP ranker and regressor on 100k x 512 float32, 10 epochs (early stopping off
  so both sides do the same work), against a loop fitting the same 5 members one at a time
  (n_members=1, same settings). Target: batched >= 2x faster.
- predict: the fitted 5-member MLP ranker on 1M x 512. Target: < 5 s.

Prints medians over `--repeats` runs and writes the `## Core` section of benchmarks/RESULTS.md.
Run: `.venv/bin/python benchmarks/bench_core.py [--repeats 3] [--n 100000]`.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
import core_synthetic  # noqa: E402
from results_md import RESULTS, median_seconds, write_section  # noqa: E402

from llm2loss import LossDiagnoser  # noqa: E402

SECTION = "## Core"


def fit_times(objective: str, X: np.ndarray, loss: np.ndarray, repeats: int,
              epochs: int) -> tuple[float, float, float, list[float]]:
    """(batched, loop) median fit seconds for 5 MLP members, the median of the per-repeat
    loop/batched ratios, and every ratio. Batched and loop runs alternate, so each ratio
    compares two runs made back to back (drift in the machine's speed cancels out)."""
    kw = dict(max_epochs=epochs, early_stopping=False, device="cpu")
    batched_s, loop_s = [], []
    for _ in range(repeats):
        batched_s.append(median_seconds(
            lambda: LossDiagnoser(objective, "mlp", n_members=5, **kw).fit(X, loss), 1))
        loop_s.append(median_seconds(
            lambda: [LossDiagnoser(objective, "mlp", n_members=1, random_state=k, **kw).fit(X, loss)
                     for k in range(5)], 1))
    ratios = [lo / ba for lo, ba in zip(loop_s, batched_s)]
    return (statistics.median(batched_s), statistics.median(loop_s), statistics.median(ratios),
            ratios)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--n-predict", type=int, default=1_000_000)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args()
    load_start = os.getloadavg()[0]
    X, loss = core_synthetic.make("nonlinear", a.n, 512, seed=0)
    rows = []
    for objective in ("rank", "regress"):
        batched, loop, ratio, ratios = fit_times(objective, X, loss, a.repeats, a.epochs)
        spread = ", ".join(f"{r:.2f}" for r in ratios)
        print(f"fit {objective}-mlp x5, {a.n}x512, {a.epochs} epochs: batched {batched:.1f}s, "
              f"loop {loop:.1f}s, loop/batched {ratio:.2f}x (per repeat: {spread}; target >= 2x)",
              flush=True)
        rows.append(f"| fit {objective}-mlp, 5 members, {a.n:,} x 512, {a.epochs} epochs | "
                    f"{batched:.1f} s | {loop:.1f} s | {ratio:.2f}x ({spread}) | >= 2x |")
    ranker = LossDiagnoser("rank", "mlp", n_members=5, max_epochs=1, early_stopping=False,
                           device="cpu").fit(X[:20_000], loss[:20_000])
    rng = np.random.default_rng(1)
    Xp = rng.standard_normal((a.n_predict, 512), dtype=np.float32)
    pred = median_seconds(lambda: ranker.predict(Xp), a.repeats)
    print(f"predict rank-mlp x5 on {a.n_predict:,} x 512: {pred:.2f}s "
          f"({a.n_predict / pred:,.0f} rows/s; target < 5 s)", flush=True)
    lines = [
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), CPU only; 1-minute "
        f"load average {load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end. "
        "Absolute times depend on the machine; the ratios, measured within one run, are what "
        "counts. Medians of "
        f"{a.repeats} runs; batched and loop runs alternate and the ratio is the median of the "
        "per-repeat ratios (listed). `python benchmarks/bench_core.py`.",
        "",
        "| what | batched | one member at a time | loop / batched | target |",
        "|---|---|---|---|---|",
        *rows,
        "",
        "| what | time | throughput | target |",
        "|---|---|---|---|",
        f"| predict rank-mlp, 5 members, {a.n_predict:,} x 512 | {pred:.2f} s | "
        f"{a.n_predict / pred:,.0f} rows/s | < 5 s |",
    ]
    if not a.no_write:
        write_section([SECTION, "", *lines])
        print(f"wrote the {SECTION} section of {RESULTS}")


if __name__ == "__main__":
    main()
