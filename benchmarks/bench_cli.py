"""Latency of the command line, cold: every run is a new `llm2loss` process, as a person types it.

- query: `llm2loss query spam-filter@v2 "<a new phrase>"` (target <= 4 s): imports, opening the
  audit (manifest, diagnosers), the text encoder and one estimate. A phrase not asked before on
  each run, so nothing is cached.
- audit of a finished release: `llm2loss audit spam-filter@v2` (target <= 3 s): it reads the
  manifest and prints the findings; it starts no Prefect server and no cluster.
- gate: `llm2loss gate spam-filter@v2` (no target; what a release pipeline waits for).
- baselines in the same moment: `python -c pass`, and `import torch`, what a query would pay
  before anything else if it ran its encoder and diagnosers in torch (it runs them in numpy when
  the audit's encoder and diagnosers allow, as the default MiniLM audits do: `llm2loss.query`).

With `--before PATH` (a checkout of the code before this change, e.g. the main branch) the same
commands also run from that checkout against the same store, alternating with the current code,
so each ratio comes from one moment of the (shared, noisy) machine.

Needs a store holding a finished audit of spam-filter v1 and v2 (`--store`, e.g. after `make
demo`); without one, `llm2loss demo --limit 160` builds it first in a temporary folder (a few
minutes). Medians of `--repeats` runs are printed and written to the `## CLI` section of
benchmarks/RESULTS.md. Run: `.venv/bin/python benchmarks/bench_cli.py [--repeats 5] [--before ../main]`.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from results_md import write_section  # noqa: E402

MODEL = "spam-filter"
TARGETS = {"query": 4.0, "audit (finished)": 3.0}


def _env(code_root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH"}}
    env.update(PYTHONPATH=str(code_root), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               PREFECT_SERVER_ANALYTICS_ENABLED="false")
    return env


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    """Wall seconds of one process run in `cwd`; fails loudly when the command fails.

    `cwd` is the checkout whose code runs: `python -m` puts the working folder first on sys.path,
    ahead of PYTHONPATH.
    """
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=600, check=False)
    seconds = time.perf_counter() - start
    if proc.returncode not in (0, 1) or (proc.returncode == 1 and "gate" not in argv):
        raise SystemExit(f"{' '.join(argv[:6])} ... failed ({proc.returncode}): {proc.stderr[-1500:]}")
    return seconds


def commands(store: str, run: int) -> dict[str, list[str]]:
    """The commands measured; the query phrase is new on every run."""
    cli = [sys.executable, "-m", "app.cli"]
    return {
        "python -c pass": [sys.executable, "-c", "pass"],
        "import torch": [sys.executable, "-c", "import torch"],
        "query": cli + ["query", f"{MODEL}@v2", f"an email about invoice number {run} of a new supplier",
                        "--store", store],
        "audit (finished)": cli + ["audit", f"{MODEL}@v2", "--store", store],
        "gate": cli + ["gate", f"{MODEL}@v2", "--store", store],
    }


def ensure_store(store: str | None, tmp: Path) -> str:
    """A store with finished audits of spam-filter v1 and v2 (built with the demo if not given)."""
    if store is not None:
        return str(Path(store).resolve())
    built = str(tmp / "store")
    env = _env(REPO) | {"LLM2LOSS_AUDIT__SHARD_SIZE": "80", "LLM2LOSS_AUDIT__DIAGNOSERS__N_MEMBERS": "5"}
    print("building a store: llm2loss demo --limit 160 ...", flush=True)
    subprocess.run([sys.executable, "-m", "app.cli", "demo", "--limit", "160", "--store", built],
                   env=env, check=True, capture_output=True, timeout=1800)
    return built


def notes(medians: dict[tuple[str, str], float]) -> str:
    """What the figures say: the query beyond its torch floor, and the ratios to before."""
    query, torch_floor = medians[("now", "query")], medians[("now", "import torch")]
    text = (f"`query` is {query:.1f} s against {torch_floor:.1f} s for importing torch alone: it imports no torch "
            "(the MiniLM and the diagnosers run in numpy), so the whole command, imports, opening the audit, "
            "loading the MiniLM and one estimate, costs less than that one import did.")
    if ("before", "query") in medians:
        text += (f" Before (the code given by --before) the same moment gave query "
                 f"{medians[('before', 'query')]:.1f} s and audit {medians[('before', 'audit (finished)')]:.1f} s.")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--store", default=None, help="a store with finished audits of spam-filter v1, v2")
    parser.add_argument("--before", type=Path, default=None, help="a checkout of the code before, to compare")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = ensure_store(args.store, Path(tmp))
        codes = {"now": REPO} | ({"before": args.before.resolve()} if args.before else {})
        times: dict[tuple[str, str], list[float]] = {}
        for run in range(args.repeats):
            for label, root in codes.items():  # alternate: both see the same moment of the machine
                for name, argv in commands(store, run).items():
                    if label == "before" and name.startswith(("python", "import")):
                        continue
                    if label == "before" and name == "gate" and not (root / "llm2loss" / "gate.py").exists():
                        continue
                    times.setdefault((label, name), []).append(timed(argv, _env(root), root))
            print(f"run {run + 1}/{args.repeats} done", flush=True)
    medians = {key: statistics.median(v) for key, v in times.items()}
    lines = ["## CLI", "",
             f"Cold command latency: each run a new process (`{Path(sys.executable).name} -m app.cli ...`), "
             f"median of {args.repeats} runs, on {platform.machine()} with {os.cpu_count()} CPUs "
             f"(load average at the end {os.getloadavg()[0]:.1f}). The query phrase is new on every run. "
             "`benchmarks/bench_cli.py`.", "",
             "| command | median (s) | runs (s) | target | " + ("before (s) | now / before |" if args.before else ""),
             "|---|---|---|---|" + ("---|---|" if args.before else "")]
    for name in commands(store, 0):
        now = times[("now", name)]
        target = TARGETS.get(name)
        verdict = "" if target is None else f"<= {target:g} s: {'met' if medians[('now', name)] <= target else 'NOT met'}"
        row = (f"| `{name}` | {medians[('now', name)]:.2f} | {', '.join(f'{t:.1f}' for t in now)} | {verdict} |")
        if args.before:
            before = medians.get(("before", name))
            row += (f" {before:.2f} | {medians[('now', name)] / before:.2f} |" if before else " | |")
        lines.append(row)
    lines += ["", notes(medians)]
    print("\n".join(lines))
    if not args.no_write:
        write_section(lines)


if __name__ == "__main__":
    main()
