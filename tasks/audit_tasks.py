"""Prefect tasks of an audit: thin wrappers over `llm2loss.audit` with retries and logging.

Tasks pass store settings, release specs, plans and small dicts; arrays and models never travel
through the graph (they live in the store, and each worker process loads a model once).

Caching: the store's manifests and part sidecars are the cache (a shard whose part is listed and
verified is skipped), keyed by dataset and encoder fingerprints and the release. A Prefect result
cache would trust a part deleted or corrupted since, so tasks use `NO_CACHE`; the cache key a
shard task would have is still logged (`cache_key`) and used in its task-run name.
"""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from llm2loss import audit
from llm2loss.audit import AuditPlan
from llm2loss.config import AuditSettings, ReleaseSpec, StoreSettings
from llm2loss.errors import ConfigError, DataError, NotFoundError, WeightsError

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


def shard_cache_key(prefix: str, index: int) -> str:
    """The identity of a shard's work: its part's location, which embeds every fingerprint."""
    return f"{prefix}/part-{index:05d}"


@task(name="plan-audit", cache_policy=NO_CACHE, **IO_RETRIES)
def plan_audit(
    store: StoreSettings, release: ReleaseSpec, settings: AuditSettings, cache_dir: str
) -> AuditPlan:
    """Fingerprint dataset and encoder; count shards."""
    plan = audit.plan_audit(store, release, settings, cache_dir)
    get_run_logger().info(
        "planned %s: %d shards of %d on %s (%s), encoder %s, embeddings %s",
        release.ref, plan.embeddings_sharding.n_shards, plan.embeddings_sharding.shard_size, plan.dataset, plan.dataset_fingerprint[:12],
        plan.encoder_spec, "reused" if plan.embeddings_ready else "to compute",
    )
    return plan


@task(name="begin-stage", cache_policy=NO_CACHE, **IO_RETRIES)
def begin_stage(store: StoreSettings, prefix: str, sharding: audit.StageSharding) -> list[int]:
    """Record the stage's sharding; the shards whose part is missing or fails its checksum."""
    pending = audit.begin_stage(store, prefix, sharding)
    get_run_logger().info("%s: %d of %d shards of %d to compute", prefix, len(pending), sharding.n_shards,
                          sharding.shard_size)
    return pending


@task(name="embed-shard", task_run_name="embed-{index}", cache_policy=NO_CACHE, **IO_RETRIES)
def embed_shard(
    store: StoreSettings, release: ReleaseSpec, plan: AuditPlan, index: int, cache_dir: str
) -> dict[str, Any]:
    """Embed one shard (the encoder is loaded once per worker process)."""
    result = audit.embed_shard(store, release, plan, index, cache_dir)
    _log_shard("embedded", plan.embeddings_prefix, index, result)
    return result


@task(name="loss-shard", task_run_name="loss-{index}", cache_policy=NO_CACHE, **IO_RETRIES)
def loss_shard(
    store: StoreSettings, release: ReleaseSpec, plan: AuditPlan, index: int, cache_dir: str
) -> dict[str, Any]:
    """Per-sample losses of one shard (the model is loaded once per worker process)."""
    result = audit.loss_shard(store, release, plan, index, cache_dir)
    _log_shard("losses of", plan.losses_prefix, index, result)
    return result


def _log_shard(what: str, prefix: str, index: int, result: dict[str, Any]) -> None:
    rate = result["rows"] / result["seconds"] if result["seconds"] > 0 else float("inf")
    get_run_logger().info(
        "%s shard %d: %d rows, %d skipped, %.1f rows/s (cache_key %s)",
        what, index, result["rows"], result["failures"], rate, shard_cache_key(prefix, index),
    )


@task(name="seal-stage", cache_policy=NO_CACHE, **IO_RETRIES)
def seal_stage(store: StoreSettings, prefix: str, n_shards: int) -> dict[str, Any]:
    """Write a stage's manifest, last, once all its parts are verified."""
    result = audit.seal_stage(store, prefix, n_shards)
    get_run_logger().info("sealed %s: %d rows, %d samples skipped", prefix, result["rows"], result["failures"])
    return result


@task(name="train-and-analyse", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=5,
      retry_condition_fn=retry_unless_bad_input)
def train_and_analyse(
    store: StoreSettings, release: ReleaseSpec, plan: AuditPlan, settings: AuditSettings,
    cache_dir: str | None = None,
) -> dict[str, Any]:
    """Train the diagnosers, evaluate them on the held-out split, return the metrics."""
    metrics = audit.train_and_analyse(store, release, plan, settings, cache_dir)
    get_run_logger().info("trained %d diagnosers for %s", len(metrics.get("validity", {})), release.ref)
    return metrics


@task(name="regression-report", cache_policy=NO_CACHE, **IO_RETRIES)
def regression_report(
    store: StoreSettings, release: ReleaseSpec, plan: AuditPlan, metrics: dict[str, Any]
) -> dict[str, Any] | None:
    """Compare with the previous audited version of the same model, if any."""
    report = audit.regression_against_previous(store, release, plan, metrics)
    if report is None:
        get_run_logger().info("no earlier audited version of %s on this dataset and encoder", release.model)
    return report


@task(name="publish-report", cache_policy=NO_CACHE, **IO_RETRIES)
def publish_report(
    store: StoreSettings,
    release: ReleaseSpec,
    plan: AuditPlan,
    metrics: dict[str, Any],
    regression: dict[str, Any] | None,
) -> dict[str, Any]:
    """Render and upload the HTML/Markdown report and metrics.json."""
    result = audit.publish_report(store, release, plan, metrics, regression)
    get_run_logger().info("report of %s at %s", release.ref, result["uri"])
    return result


@task(name="write-audit-manifest", cache_policy=NO_CACHE, **IO_RETRIES)
def write_audit_manifest(
    store: StoreSettings,
    release: ReleaseSpec,
    plan: AuditPlan,
    report: dict[str, Any],
    summary: dict[str, Any],
    regression_flag: bool,
) -> dict[str, Any]:
    """Write the audit manifest: the audit exists from this moment on."""
    return audit.write_audit_manifest(
        store, release, plan, report=report, summary=summary, regression_flag=regression_flag
    )
