"""Speed of `llm2loss serve`: warm estimate / compare / discover, and the CLI asking it.

- The audit: `--store URI --ref MODEL@VERSION` names a finished one (e.g. the demo's store);
  without them, spam-filter v1 is trained on a `--limit` SpamAssassin slice and audited here
  through the real flow (Prefect's local API, a Dask LocalCluster of 2 workers) into a temporary
  folder store, with 5-member rank and familiarity MLP ensembles and the packaged MiniLM encoder.
- The service runs as `python -m app.cli serve --port 0` in a child process (ended by its
  PID); this process asks it through `app.client.ServiceClient`, as a user's script would. The
  first question opens the audit (loads its encoder and diagnosers; reported as "open"). Then
  every timed call asks about phrases never asked before: estimate one phrase, compare two,
  discover over the 50-phrase email_topics vocabulary; `--repeats` calls each, medians.
- CLI: `llm2loss query REF PHRASE --json --server URL` against the warm service vs the same
  query in-process (`--store`), each as a fresh process, `--cli-repeats` times; medians.

Targets (issue 14): warm estimate of one new phrase median <= 100 ms, compare <= 150 ms. Figures
are printed and written to the `## Serve` section of benchmarks/RESULTS.md.
Run: `.venv/bin/python benchmarks/bench_serve.py [--repeats 30] [--limit 400]`.
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
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from results_md import RESULTS, write_section  # noqa: E402

from app.client import ServiceClient  # noqa: E402

SECTION = "## Serve"
TARGET_ESTIMATE_MS = 100.0
TARGET_COMPARE_MS = 150.0
MODEL, VERSION = "spam-filter", "v1"


def build_audit(root: Path, limit: int) -> str:
    """Train, register and audit spam-filter v1 on a `limit`-email slice in a store under `root`."""
    from flows.audit import run_audit_flow
    from llm2loss import pipeline as stages
    from llm2loss import registry
    from llm2loss.config import AuditSettings, DatasetSpec, DiagnoserSettings, Settings, StoreSettings
    from llm2loss.example_models.spam import train_spam_releases

    cache_dir = os.environ.get("LLM2LOSS_CACHE_DIR", "~/.cache/llm2loss")
    spec = DatasetSpec(name=f"spamassassin-{limit}", kind="spamassassin", limit=limit)
    releases = train_spam_releases(stages.get_source(spec, cache_dir), root / "weights", dataset=spec)
    cfg = Settings(
        store=StoreSettings(uri=str(root / "store")), cache_dir=cache_dir,
        audit=AuditSettings(shard_size=max(50, limit // 4), diagnosers=DiagnoserSettings(
            objectives=["rank", "familiarity"], archs=["mlp"], n_members=5)),
    )
    release, weights = releases[0]
    registry.register(stages.get_store(cfg.store), release, weights_file=weights)
    run_audit_flow(release.model, release.version, cfg)
    return cfg.store.uri


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.pop("LLM2LOSS_SERVER", None)
    return env


def start_service(store: str) -> tuple[subprocess.Popen, str]:
    """`llm2loss serve --port 0 --store STORE` as a child process; (process, base URL)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", "0", "--store", store],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=child_env(),
    )
    line = proc.stdout.readline() if proc.stdout else ""
    if "http://" not in line:
        proc.terminate()
        raise RuntimeError(f"llm2loss serve did not start: {line!r}")
    url = line.split("http://", 1)[1].split("/", 1)[0]
    return proc, f"http://{url}"


def timed_ms(call: Callable[[int], object], repeats: int) -> list[float]:
    """Wall times (ms) of call(0), call(1), ... call(repeats - 1)."""
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        call(i)
        times.append((time.perf_counter() - start) * 1000)
    return times


def cli_seconds(args: list[str], repeats: int) -> float:
    """Median wall time (s) of `python -m app.cli ARGS` as a fresh process."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True,
                              text=True, env=child_env(), check=False)
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise RuntimeError(f"llm2loss {' '.join(args)} failed: {done.stderr.strip()}")
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", help="store holding a finished audit (default: build one)")
    parser.add_argument("--ref", default=f"{MODEL}@{VERSION}", help="MODEL@VERSION of that audit")
    parser.add_argument("--limit", type=int, default=400, help="emails of the audit built here")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--cli-repeats", type=int, default=3)
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = parser.parse_args()
    model, version = args.ref.split("@", 1)
    load = os.getloadavg()[0]  # the machine may be shared: say how busy it was

    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        built = args.store is None
        store = args.store or build_audit(Path(tmp), args.limit)
        proc, url = start_service(store)
        try:
            client = ServiceClient(url)
            start = time.perf_counter()
            client.estimate(model, version, ["an email written in HTML"])
            open_s = time.perf_counter() - start
            estimate = timed_ms(lambda i: client.estimate(
                model, version, [f"an email about topic number {i} of the week"]), args.repeats)
            compare = timed_ms(lambda i: client.compare(
                model, version, f"a newsletter about subject {i}", f"a personal reply about plan {i}"),
                args.repeats)
            discover = timed_ms(lambda i: client.discover(model, version, "email_topics", top_k=10),
                                max(3, args.repeats // 3))
            phrase = "an email written in HTML"
            remote_cli = cli_seconds(["query", args.ref, phrase, "--json", "--server", url], args.cli_repeats)
            local_cli = cli_seconds(["query", args.ref, phrase, "--json", "--store", store], args.cli_repeats)
        finally:
            proc.terminate()
            proc.wait(timeout=30)

    est, cmp_, disc = (statistics.median(t) for t in (estimate, compare, discover))
    verdict = lambda value, target: "meets" if value <= target else "MISSES"  # noqa: E731
    lines = [
        SECTION, "",
        f"`llm2loss serve` on {platform.node() or 'this machine'} ({os.cpu_count()} CPUs, load average "
        f"{load:.1f} at the start), audit "
        f"{args.ref} ({'built here: ' + str(args.limit) + ' e-mails, 5-member rank + familiarity MLPs, MiniLM' if built else store}); "
        f"the service in a child process, asked over HTTP on 127.0.0.1 through ServiceClient; "
        f"{args.repeats} calls each, every one about phrases not asked before. One run:",
        "",
        "| what | median | min | max | target |",
        "|---|---|---|---|---|",
        f"| estimate, 1 new phrase | {est:.1f} ms | {min(estimate):.1f} ms | {max(estimate):.1f} ms | "
        f"<= {TARGET_ESTIMATE_MS:.0f} ms ({verdict(est, TARGET_ESTIMATE_MS)}) |",
        f"| compare, 2 new phrases | {cmp_:.1f} ms | {min(compare):.1f} ms | {max(compare):.1f} ms | "
        f"<= {TARGET_COMPARE_MS:.0f} ms ({verdict(cmp_, TARGET_COMPARE_MS)}) |",
        f"| discover, email_topics (50 phrases), top 10 | {disc:.1f} ms | {min(discover):.1f} ms | "
        f"{max(discover):.1f} ms | - |",
        f"| first question (opens the audit: encoder + diagnosers) | {open_s:.2f} s | | | - |",
        f"| CLI `query --json --server URL`, fresh process | {remote_cli:.2f} s | | | - |",
        f"| CLI `query --json --store S` in-process, fresh process | {local_cli:.2f} s | | | - |",
        "",
        f"Run: `.venv/bin/python benchmarks/bench_serve.py --repeats {args.repeats}`.",
    ]
    print("\n".join(lines))
    if not args.no_write:
        write_section(lines)
        print(f"wrote {SECTION} to {RESULTS}")


if __name__ == "__main__":
    main()
