"""`run_audit`: the order of an audit's stages, with no orchestrator in it.

plan -> embed shards (once per dataset and encoder) -> seal -> loss shards (once per release) ->
seal -> train diagnosers and analyse -> regression against the previous version -> report ->
manifest (last). Two hooks say WHERE the work runs, never what or in which order:

- `map_shards(fn, ctx, pending)` runs `fn(ctx, index)` for every pending shard and yields each
  result as it finishes. The default, `serial_map`, runs them here one after the other; the
  Prefect flow passes one that submits a task per shard to Dask.
- `run_step(fn, *args, **kwargs)` runs one non-sharded step. The default, `run_here`, calls it;
  the flow runs each as a Prefect task (retries, and the plan and analysis on a worker).

So the library audits a release without Prefect, and the flow is wiring. Every stage is
idempotent (`llm2loss.pipeline.shards`): a rerun never repeats finished work. One audit of a
release at a time is `llm2loss.pipeline.locks.audit_exclusively` around this.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from llm2loss import console
from llm2loss.config import AuditSettings, ReleaseSpec, Settings
from llm2loss.phrases import normalise_phrases
from llm2loss.pipeline.context import AuditContext
from llm2loss.pipeline.plan import plan_audit
from llm2loss.pipeline.publish import (audit_summary, publish_report, regression_against_previous,
                                       write_audit_manifest)
from llm2loss.pipeline.shards import begin_stage, embed_shard, loss_shard, seal_stage
from llm2loss.pipeline.train import train_and_analyse

ShardFn = Callable[[AuditContext, int], dict[str, Any]]
ShardMapper = Callable[[ShardFn, AuditContext, list[int]], Iterable[dict[str, Any]]]
StepRunner = Callable[..., Any]
#: Called once the manifest is written: (release, metrics, report URI, regression) -> what it
#: published, for the report stage's line (the flow: Prefect artifacts and events).
Announcer = Callable[[ReleaseSpec, dict[str, Any], str, "dict[str, Any] | None"], str]

log = logging.getLogger(__name__)


def serial_map(fn: ShardFn, ctx: AuditContext, pending: list[int]) -> Iterator[dict[str, Any]]:
    """Run the shards here, one after the other."""
    for index in pending:
        yield fn(ctx, index)


def run_here(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a step here."""
    return fn(*args, **kwargs)


def checked_audit_settings(settings: AuditSettings) -> AuditSettings:
    """The audit settings with untrusted text normalised (phrases, pairs) and every named
    vocabulary loaded once, so bad input fails before any model loads (and reports use it so)."""
    from llm2loss.vocab import check_vocabularies

    check_vocabularies(settings.vocabularies)
    return settings.model_copy(update={
        "phrases": normalise_phrases(list(settings.phrases)),
        "pairs": [tuple(normalise_phrases(list(pair))) for pair in settings.pairs],
    })


def _stage(name: str, progress: bool) -> Any:
    """A stage line on the command's console when `progress`, else nothing."""
    return console.stage(name) if progress else contextlib.nullcontext(console.StageNote())


def _run_shards(map_shards: ShardMapper, fn: ShardFn, ctx: AuditContext, pending: list[int], *,
                what: str, progress: bool, logger: Any) -> dict[str, Any]:
    """Run the pending shards through `map_shards`; log counts and throughput as they finish.

    With `progress`, the stage is one progress bar on the console the command installed
    (llm2loss.console); the per-shard log lines go to `logger` either way.
    """
    start = time.perf_counter()
    rows = skipped = 0
    compute = 0.0
    bar = console.shards(what, len(pending)) if progress else contextlib.nullcontext(lambda: None)
    with bar as advance:
        for done, result in enumerate(map_shards(fn, ctx, pending), start=1):
            rows += result["rows"]
            skipped += result["unreadable"]
            compute += result["seconds"]
            elapsed = time.perf_counter() - start
            logger.info("%s: %d/%d shards, %d rows, %.1f rows/s", what, done, len(pending), rows,
                        rows / max(elapsed, 1e-9))
            advance()
    return {"shards": len(pending), "rows": rows, "skipped": skipped, "seconds": time.perf_counter() - start,
            "compute_seconds": compute}


def run_audit(
    release: ReleaseSpec,
    settings: Settings,
    *,
    map_shards: ShardMapper = serial_map,
    run_step: StepRunner = run_here,
    progress: bool = False,
    logger: Any = None,
    announce: Announcer | None = None,
) -> dict[str, Any]:
    """Audit `release` with `settings` (store, audit options, cache folder); its manifest.

    Runs every stage, reusing whatever a previous run left verified in the store. Does not take
    the release's lock nor skip a finished audit: `locks.audit_exclusively` does both.
    """
    logger = logger or log
    audit_settings = checked_audit_settings(settings.audit)
    ctx = AuditContext.of(settings, release)
    stage_seconds: dict[str, float] = {}
    start = time.perf_counter()
    with _stage("plan", progress) as note:
        plan = run_step(plan_audit, ctx, audit_settings)
        note.detail = (f"{plan.embeddings_sharding.n_shards} shards of {plan.embeddings_sharding.shard_size} on "
                       f"{plan.dataset}, encoder {plan.encoder_spec}, embeddings "
                       f"{'reused' if plan.embeddings_ready else 'to compute'}")
    stage_seconds["plan"] = time.perf_counter() - start
    ctx, store = ctx.with_plan(plan), ctx.store

    # Verified even when sealed: a part corrupted since is recomputed, never read as good.
    pending = run_step(begin_stage, store, plan.embeddings_prefix, plan.embeddings_sharding)
    embed = {"shards": 0, "rows": 0, "skipped": 0, "seconds": 0.0, "compute_seconds": 0.0, "reused": not pending}
    if pending:
        embed.update(_run_shards(map_shards, embed_shard, ctx, pending, what="embed", progress=progress,
                                 logger=logger))
    elif progress:
        with _stage("embed", progress) as note:
            note.detail = "reused: every shard is already embedded and verified"
    if pending or not plan.embeddings_ready:
        run_step(seal_stage, store, plan.embeddings_prefix, plan.embeddings_sharding.n_shards)
    stage_seconds["embed"] = embed["seconds"]

    pending = run_step(begin_stage, store, plan.losses_prefix, plan.losses_sharding)
    if progress and not pending:
        with _stage("losses", progress) as note:
            note.detail = "reused: every shard's losses are already computed and verified"
    losses = _run_shards(map_shards, loss_shard, ctx, pending, what="losses", progress=progress, logger=logger)
    sealed = run_step(seal_stage, store, plan.losses_prefix, plan.losses_sharding.n_shards)
    stage_seconds["losses"] = losses["seconds"]

    start = time.perf_counter()
    with _stage("train and analyse", progress) as note:
        metrics = run_step(train_and_analyse, ctx, audit_settings)
        note.detail = f"{len(metrics.get('validity', {}))} diagnosers"
    stage_seconds["train_and_analyse"] = time.perf_counter() - start

    start = time.perf_counter()
    with _stage("regression", progress) as note:
        regression = run_step(regression_against_previous, ctx, metrics)
        note.detail = ("no earlier version audited alike" if regression is None else
                       f"against {(regression.get('previous') or {}).get('version')}: "
                       f"{'significant' if regression.get('significant_regression') else 'none significant'}")
    stage_seconds["regression"] = time.perf_counter() - start
    summary = audit_summary(ctx, sealed_rows=int(sealed["rows"]), split=metrics.get("split", {}),
                            stage_seconds=stage_seconds,
                            shard_compute_seconds={"embed": embed["compute_seconds"],
                                                   "losses": losses["compute_seconds"]})
    metrics["summary"] = summary
    with _stage("report", progress) as note:
        report = run_step(publish_report, ctx, metrics, regression)
        flag = bool(regression and regression.get("significant_regression"))
        manifest = run_step(write_audit_manifest, ctx, report=report, summary=summary, regression_flag=flag)
        published = ["HTML report", "manifest"]
        if announce is not None:
            published.append(announce(release, metrics, report["uri"], regression))
        note.detail = ", ".join(published)
    return manifest
