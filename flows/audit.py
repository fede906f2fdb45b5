"""Prefect flows: audit one release, and audit every release not audited yet.

Wiring only. The order of the stages is `llm2loss.pipeline.run.run_audit`; the lock that lets one
audit of a release run at a time is `llm2loss.pipeline.locks`; what the flows run on (Dask task
runner, shared LocalCluster, temporary Prefect API) is `flows.runtime`, built when a flow runs.
Here each step becomes a Prefect task (`tasks.audit_tasks`), shard tasks run on Dask (a
LocalCluster by default, an existing cluster by `LLM2LOSS_DASK__ADDRESS`, GPU workers with
`LLM2LOSS_DASK__GPU=true`), and a finished audit is announced as Prefect artifacts and events.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from flows.artifacts import publish_audit_artifacts
from flows.events import emit_audit_events
from flows.runtime import (SettingsDaskTaskRunner, load_settings, make_task_runner, share_local_prefect_api,
                           shared_local_cluster)
from llm2loss import audits, registry
from llm2loss.config import ReleaseSpec, Settings
from llm2loss.pipeline.locks import audit_exclusively
from llm2loss.pipeline.run import checked_audit_settings, run_audit
from llm2loss.pipeline.workers import get_store
from tasks.audit_tasks import run_step, shard_mapper


def _announce(release: ReleaseSpec, metrics: dict[str, Any], report_uri: str,
              regression: dict[str, Any] | None) -> str:
    """The finished audit as Prefect artifacts and events (after its manifest is written)."""
    publish_audit_artifacts(release, metrics, report_uri, regression)
    emit_audit_events(release.model, release.version, report_uri, regression)
    return "Prefect artifacts and events"


@flow(name="audit-release", log_prints=True, task_runner=SettingsDaskTaskRunner())
def audit_release(
    model: str, version: str, settings: dict[str, Any] | None = None, progress: bool = False
) -> dict[str, Any]:
    """Audit one release end to end; returns the audit manifest. Does nothing if already done.

    One audit of a release runs at a time: a second run waits for the first and returns its
    manifest, or takes over when the first died (its lock is stale).
    """
    logger = get_run_logger()
    cfg = load_settings(settings)
    # Untrusted text is normalised once, here, before any model loads (and reports use it so).
    cfg = cfg.model_copy(update={"audit": checked_audit_settings(cfg.audit)})
    store = get_store(cfg.store)
    release = registry.get(store, model, version)
    return audit_exclusively(store, release, lambda: run_audit(
        release, cfg, map_shards=shard_mapper(gpu=cfg.dask.gpu), run_step=run_step, progress=progress,
        logger=logger, announce=_announce), logger=logger)


@flow(name="audit-new-releases", log_prints=True)
def audit_new_releases(settings: dict[str, Any] | None = None) -> list[str]:
    """Audit every registered release that has no completed audit yet (as subflows)."""
    logger = get_run_logger()
    cfg = load_settings(settings)
    todo = audits.unaudited(get_store(cfg.store))
    logger.info("%d release(s) without a completed audit: %s", len(todo), ", ".join(r.ref for r in todo) or "none")
    audited: list[str] = []
    if not todo:
        return audited
    with shared_local_cluster(cfg) as audit_cfg:  # one set of workers for all of them
        runner = audit_release.with_options(task_runner=make_task_runner(audit_cfg.dask))
        for release in sorted(todo, key=lambda r: r.created_at):
            runner(model=release.model, version=release.version, settings=audit_cfg.model_dump(mode="json"))
            audited.append(release.ref)
    return audited


def run_audit_flow(model: str, version: str, cfg: Settings, *, progress: bool = False) -> dict[str, Any]:
    """Run `audit_release` in this process with the task runner the settings ask for."""
    if not cfg.dask.address:
        share_local_prefect_api()
    runner = audit_release.with_options(task_runner=make_task_runner(cfg.dask))
    return runner(model=model, version=version, settings=cfg.model_dump(mode="json"), progress=progress)
