"""Prefect tasks of an audit: the functions of `llm2loss.pipeline`, wrapped with retries and logs.

Two factories, no hand-written twins: `shard_task` makes the per-shard task of a sharded stage
(`embed-<i>`, `loss-<i>`), `step_task` the task of one other step. `run_step` and `map_shards`
are the hooks `llm2loss.pipeline.run.run_audit` takes, so the flow passes them and is wiring.
Tasks pass an `AuditContext` (settings, release, plan: small and picklable) and small dicts;
arrays and models never travel through the graph (they live in the store, and each worker
process loads a model once).

Caching: the store's manifests and part sidecars are the cache (a shard whose part is listed and
verified is skipped), keyed by dataset and encoder fingerprints and the release. A Prefect result
cache would trust a part deleted or corrupted since, so tasks use `NO_CACHE`; the cache key a
shard task would have is still logged (`cache_key`) and used in its task-run name.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable, Iterator
from typing import Any

import dask
from prefect import Task, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed
from prefect.tasks import exponential_backoff

from llm2loss.store import keys as layout
from llm2loss.errors import ConfigError, DataError, NotFoundError, WeightsError
from llm2loss.pipeline import plan, publish, shards, train
from llm2loss.pipeline.context import AuditContext

# Bad input fails the same way every time: retrying it only delays the error message.
NOT_RETRIED = (ConfigError, DataError, NotFoundError, WeightsError)


def retry_unless_bad_input(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect retry condition: retry I/O failures (StoreError, lost workers), not bad input."""
    try:
        error = state.result(raise_on_failure=False)
    except Exception:  # noqa: BLE001 - an unreadable result: treat it as transient
        return True
    return not isinstance(error, NOT_RETRIED)


IO_RETRIES = dict(
    retries=3,
    retry_delay_seconds=exponential_backoff(backoff_factor=2),
    retry_jitter_factor=0.5,
    retry_condition_fn=retry_unless_bad_input,
)
ONE_RETRY = dict(retries=1, retry_delay_seconds=5, retry_condition_fn=retry_unless_bad_input)

Describe = Callable[[Any, dict[str, Any]], str]  # (result, the call's arguments) -> a log line


def shard_cache_key(prefix: str, index: int) -> str:
    """The identity of a shard's work: its part's location, which embeds every fingerprint."""
    return layout.part_key(prefix, index).removesuffix(".parquet")


def shard_task(fn: Callable[[AuditContext, int], dict[str, Any]], *, name: str, what: str,
               prefix_of: Callable[[AuditContext], str]) -> Task:
    """The task running `fn(ctx, index)` for one shard, named `<name>-<index>`, with I/O retries.

    It logs the shard's rows, skipped samples, throughput and cache key (`prefix_of(ctx)` is the
    stage's prefix)."""

    @functools.wraps(fn)
    def run(ctx: AuditContext, index: int) -> dict[str, Any]:
        result = fn(ctx, index)
        rate = result["rows"] / result["seconds"] if result["seconds"] > 0 else float("inf")
        get_run_logger().info(
            "%s shard %d: %d rows, %d skipped, %.1f rows/s (cache_key %s)",
            what, index, result["rows"], result["unreadable"], rate, shard_cache_key(prefix_of(ctx), index),
        )
        return result

    return task(run, name=f"{name}-shard", task_run_name=f"{name}-{{index}}", cache_policy=NO_CACHE,
                **IO_RETRIES)


def step_task(fn: Callable[..., Any], *, name: str, describe: Describe | None = None, **options: Any) -> Task:
    """The task of one non-sharded step (`options`: its retries, I/O retries by default); it
    logs `describe(result, arguments)` when given."""
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        result = fn(*args, **kwargs)
        if describe is not None:
            get_run_logger().info(describe(result, signature.bind(*args, **kwargs).arguments))
        return result

    return task(run, name=name, cache_policy=NO_CACHE, **(options or IO_RETRIES))


def _planned(p: Any, args: dict[str, Any]) -> str:
    s = p.embeddings_sharding
    return (f"planned {args['ctx'].release.ref}: {s.n_shards} shards of {s.shard_size} on {p.dataset} "
            f"({p.dataset_fingerprint[:12]}), encoder {p.encoder_spec}, embeddings "
            f"{'reused' if p.embeddings_ready else 'to compute'}")


SHARD_TASKS: dict[Callable[..., Any], Task] = {
    shards.embed_shard: shard_task(shards.embed_shard, name="embed", what="embedded",
                                   prefix_of=lambda ctx: ctx.planned.embeddings_prefix),
    shards.loss_shard: shard_task(shards.loss_shard, name="loss", what="losses of",
                                  prefix_of=lambda ctx: ctx.planned.losses_prefix),
}

STEP_TASKS: dict[Callable[..., Any], Task] = {
    plan.plan_audit: step_task(plan.plan_audit, name="plan-audit", describe=_planned),
    shards.begin_stage: step_task(shards.begin_stage, name="begin-stage", describe=lambda r, a: (
        f"{a['prefix']}: {len(r)} of {a['sharding'].n_shards} shards of {a['sharding'].shard_size} to compute")),
    shards.seal_stage: step_task(shards.seal_stage, name="seal-stage", describe=lambda r, a: (
        f"sealed {r['prefix']}: {r['rows']} rows, {r['unreadable']} samples skipped")),
    train.train_and_analyse: step_task(train.train_and_analyse, name="train-and-analyse", describe=lambda r, a: (
        f"trained {len(r.get('validity', {}))} diagnosers for {a['ctx'].release.ref}"), **ONE_RETRY),
    publish.regression_against_previous: step_task(
        publish.regression_against_previous, name="regression-report", describe=lambda r, a: (
            f"compared {a['ctx'].release.ref} with {r['previous']['version']}" if r is not None else
            f"no earlier audited version of {a['ctx'].release.model} on this dataset and encoder")),
    publish.publish_report: step_task(publish.publish_report, name="publish-report", describe=lambda r, a: (
        f"report of {a['ctx'].release.ref} at {r['uri']}")),
    publish.write_audit_manifest: step_task(publish.write_audit_manifest, name="write-audit-manifest"),
}


# Submitted to the task runner (a Dask worker): the plan and the analysis load the encoder
# there, where the shard tasks reuse it. The other steps run in the flow's process.
REMOTE_STEPS = frozenset({plan.plan_audit, train.train_and_analyse})


def run_step(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """`run_audit`'s step hook: run `fn` as its Prefect task (on a worker when in REMOTE_STEPS)."""
    made = STEP_TASKS[fn]
    if fn in REMOTE_STEPS:
        return made.submit(*args, **kwargs).result()
    return made(*args, **kwargs)


@contextlib.contextmanager
def _gpu_annotation(enabled: bool) -> Iterator[None]:
    if enabled:
        with dask.annotate(resources={"GPU": 1}):
            yield
    else:
        yield


def shard_mapper(*, gpu: bool) -> Callable[..., Iterator[dict[str, Any]]]:
    """`run_audit`'s shard hook: one task per pending shard on the task runner (asking each
    worker for a GPU when `gpu`), results yielded as they finish."""

    def map_shards(fn: Callable[..., Any], ctx: AuditContext, pending: list[int]) -> Iterator[dict[str, Any]]:
        made = SHARD_TASKS[fn]
        with _gpu_annotation(gpu):
            futures = [made.submit(ctx, index) for index in pending]
        for future in as_completed(futures):
            yield future.result()

    return map_shards
