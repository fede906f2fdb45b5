"""Prefect flows: audit one release, audit every new release, answer questions about an audit.

Wiring only: every step is a task from `tasks/`, every computation a function of `llm2loss`.
Shard tasks run on Dask (a LocalCluster by default, an existing cluster by `LLM2LOSS_DASK__ADDRESS`,
GPU workers with `LLM2LOSS_DASK__GPU=true`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from typing import Any, Iterator

import dask
import psutil
from prefect import flow, get_run_logger
from prefect.exceptions import MissingContextError
from prefect.futures import as_completed
from prefect_dask import DaskTaskRunner

from flows.artifacts import publish_audit_artifacts
from flows.events import emit_audit_events
from llm2loss import audit, registry
from llm2loss.store import keys as layout
from llm2loss import console as stage_console
from llm2loss.config import DaskSettings, ReleaseSpec, Settings
from llm2loss.errors import Llm2LossError, NotFoundError
from llm2loss.query import validate_phrases
from llm2loss.store.checks import lock_body
from llm2loss.vocab import check_vocabularies
from tasks import audit_tasks as t

# The audit lock's expiry, renewed every HEARTBEAT_S by the running audit: a run that died on
# another host frees the release within LOCK_TTL_S; one that died on this host at once (its
# owner names host, pid and the process's start time, so a reused pid is not mistaken for it).
LOCK_TTL_S = 15 * 60
HEARTBEAT_S = 60.0
WAIT_POLL_S = 2.0
WAIT_TIMEOUT_S = 12 * 3600


def local_cluster_kwargs(dask_settings: DaskSettings) -> dict[str, Any]:
    """Keyword arguments of the LocalCluster the settings describe (loopback only)."""
    kwargs: dict[str, Any] = {
        "n_workers": dask_settings.n_workers,
        "threads_per_worker": dask_settings.threads_per_worker,
        "processes": True,
        "host": "127.0.0.1",
        "dashboard_address": "127.0.0.1:0",  # loopback only (None still opens 0.0.0.0:8787)
    }
    if dask_settings.gpu:
        kwargs["resources"] = {"GPU": 1}
    return kwargs


def make_task_runner(dask_settings: DaskSettings) -> DaskTaskRunner:
    """A DaskTaskRunner on an existing cluster (address) or a LocalCluster sized by settings."""
    if dask_settings.address:
        return DaskTaskRunner(address=dask_settings.address)
    return DaskTaskRunner(cluster_class="distributed.LocalCluster",
                          cluster_kwargs=local_cluster_kwargs(dask_settings))


@contextlib.contextmanager
def shared_local_cluster(cfg: Settings) -> Iterator[Settings]:
    """Settings whose Dask address is one LocalCluster kept for the whole `with` block.

    Auditing several releases in a row then starts the workers once: they keep the encoder and
    the dataset they loaded (per-process caches), so a second audit does not pay for process
    start-up, imports and loading the encoder again (each release's own model is loaded anew).
    Settings that already name a cluster are yielded unchanged. The local Prefect API is shared
    first, so the workers report to it.
    """
    if cfg.dask.address:
        yield cfg
        return
    from distributed import LocalCluster

    share_local_prefect_api()
    with LocalCluster(**local_cluster_kwargs(cfg.dask)) as cluster:
        dask_settings = cfg.dask.model_copy(update={"address": cluster.scheduler_address})
        yield cfg.model_copy(update={"dask": dask_settings})


def load_settings(overrides: dict[str, Any] | None) -> Settings:
    """Settings from the environment, with a flow parameter's overrides on top."""
    base = Settings().model_dump()
    for section, values in (overrides or {}).items():
        if isinstance(values, dict) and isinstance(base.get(section), dict):
            base[section].update(values)
        else:
            base[section] = values
    return Settings.model_validate(base)


@contextlib.contextmanager
def _gpu_annotation(enabled: bool) -> Iterator[None]:
    if enabled:
        with dask.annotate(resources={"GPU": 1}):
            yield
    else:
        yield


def _run_shards(task, pending: list[int], *, what: str, gpu: bool, progress: bool, args: tuple) -> dict[str, Any]:
    """Submit one task per pending shard; log counts and throughput as they finish.

    With `progress`, the stage is one progress bar on the console the command installed
    (llm2loss.console); the per-shard log lines go to the Prefect API either way.
    """
    logger = get_run_logger()
    start = time.perf_counter()
    with _gpu_annotation(gpu):
        futures = [task.submit(*args[:-1], index, args[-1]) for index in pending]
    rows = skipped = 0
    compute = 0.0
    bar = stage_console.shards(what, len(futures)) if progress else contextlib.nullcontext(lambda: None)
    with bar as advance:
        for done, future in enumerate(as_completed(futures), start=1):
            result = future.result()
            rows += result["rows"]
            skipped += result["failures"]
            compute += result["seconds"]
            elapsed = time.perf_counter() - start
            logger.info("%s: %d/%d shards, %d rows, %.1f rows/s", what, done, len(futures), rows,
                        rows / max(elapsed, 1e-9))
            advance()
    return {"shards": len(futures), "rows": rows, "skipped": skipped, "seconds": time.perf_counter() - start,
            "compute_seconds": compute}


def _stage(name: str, progress: bool) -> Any:
    """A stage line on the command's console when `progress`, else nothing."""
    return stage_console.stage(name) if progress else contextlib.nullcontext(stage_console.StageNote())


@flow(name="audit-release", log_prints=True, task_runner=make_task_runner(Settings().dask))
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
    cfg.audit.phrases = validate_phrases(cfg.audit.phrases)
    cfg.audit.pairs = [tuple(validate_phrases(list(pair))) for pair in cfg.audit.pairs]
    check_vocabularies(cfg.audit.vocabularies)  # a bad file fails here, before any model loads
    store_settings = cfg.store
    store = audit.get_store(store_settings)
    release = registry.get(store, model, version)
    done = audit.audit_manifest(store_settings, model, version)
    if done is not None:
        logger.info("audit of %s already completed at %s; nothing to do", release.ref, done["completed_at"])
        return done
    lock_key = layout.audit_lock_key(model, version)
    owner = lock_owner()
    if not take_lock(store, lock_key, owner):
        logger.info("another run is auditing %s; waiting for it to finish", release.ref)
        finished = _wait_for_turn(cfg, release, owner)
        if finished is not None:
            return finished
        logger.info("the run that held the lock of %s is gone; auditing it here", release.ref)
    try:
        with _heartbeat(store, lock_key, owner):
            # The holder we waited for may have finished just before we took the lock.
            done = audit.audit_manifest(store_settings, model, version)
            manifest = done if done is not None else _audit(cfg, release, progress=progress)
    finally:
        store.release_lock(lock_key, owner)
    return manifest


def lock_owner() -> str:
    """This process as a lock owner: host, pid, process start time and a unique token."""
    me = psutil.Process()
    return f"{socket.gethostname()}:{me.pid}:{me.create_time():.3f}:{uuid.uuid4().hex}"


def owner_is_dead(owner: str) -> bool:
    """True when `owner` (see lock_owner) is a process on this host that no longer runs."""
    try:
        host, pid, started, _token = owner.rsplit(":", 3)
        pid_n, started_s = int(pid), float(started)
    except ValueError:
        return False  # not ours to judge: wait for its expiry
    if host != socket.gethostname():
        return False
    try:
        return abs(psutil.Process(pid_n).create_time() - started_s) > 0.01
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return True


def take_lock(store: Any, key: str, owner: str) -> bool:
    """Take the audit lock, breaking it first when its holder died on this host."""
    if store.acquire_lock(key, owner, LOCK_TTL_S):
        return True
    try:
        body = lock_body(store.read_bytes(key))  # None for anything that is not a lock
    except NotFoundError:
        body = None
    except Llm2LossError:
        return False
    holder = body["owner"] if body else ""
    if holder and owner_is_dead(holder) and store.release_lock(key, holder):
        _logger().warning("broke the lock %s left by a run that died (%s)", key, holder)
    return store.acquire_lock(key, owner, LOCK_TTL_S)


@contextlib.contextmanager
def _heartbeat(store: Any, key: str, owner: str, every_s: float = HEARTBEAT_S) -> Iterator[None]:
    """Renew the lock every `every_s` seconds while the audit runs (a thread)."""
    stop = threading.Event()
    logger = _logger()

    def beat() -> None:
        while not stop.wait(every_s):
            try:
                if not store.acquire_lock(key, owner, LOCK_TTL_S):
                    logger.warning("lost the audit lock %s to another run", key)
            except Llm2LossError as exc:  # the store is down for a moment: try at the next beat
                logger.warning("could not renew the audit lock %s: %s", key, exc)

    thread = threading.Thread(target=beat, name="audit-lock-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=30)


def _logger() -> Any:
    """The flow run's logger inside a flow, this module's logger outside one."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(__name__)


def _wait_for_turn(cfg: Settings, release: ReleaseSpec, owner: str,
                   timeout_s: float = WAIT_TIMEOUT_S) -> dict[str, Any] | None:
    """Wait for the concurrent audit: its manifest when it finishes, None when we took the lock."""
    deadline = time.monotonic() + timeout_s
    store = audit.get_store(cfg.store)
    lock_key = layout.audit_lock_key(release.model, release.version)
    while time.monotonic() < deadline:
        manifest = audit.audit_manifest(cfg.store, release.model, release.version)
        if manifest is not None:
            return manifest
        if take_lock(store, lock_key, owner):
            return None
        time.sleep(WAIT_POLL_S)
    raise Llm2LossError(
        f"timed out after {timeout_s:.0f} s waiting for the concurrent audit of {release.ref}; "
        f"check that run, or delete the lock {lock_key} if it is gone, and run the audit again"
    )


def _audit(cfg: Settings, release: ReleaseSpec, *, progress: bool) -> dict[str, Any]:
    store_settings, settings, cache_dir = cfg.store, cfg.audit, cfg.cache_dir
    stage_seconds: dict[str, float] = {}
    start = time.perf_counter()
    with _stage("plan", progress) as note:
        # On a worker: it loads the encoder there, where the shard tasks reuse it.
        plan = t.plan_audit.submit(store_settings, release, settings, cache_dir).result()
        note.detail = (f"{plan.embeddings_sharding.n_shards} shards of {plan.embeddings_sharding.shard_size} on "
                       f"{plan.dataset}, encoder {plan.encoder_spec}, embeddings "
                       f"{'reused' if plan.embeddings_ready else 'to compute'}")
    stage_seconds["plan"] = time.perf_counter() - start

    # Verified even when sealed: a part corrupted since is recomputed, never read as good.
    pending = t.begin_stage(store_settings, plan.embeddings_prefix, plan.embeddings_sharding)
    embed = {"shards": 0, "rows": 0, "skipped": 0, "seconds": 0.0, "compute_seconds": 0.0, "reused": not pending}
    if pending:
        embed.update(_run_shards(t.embed_shard, pending, what="embed", gpu=cfg.dask.gpu, progress=progress,
                                 args=(store_settings, release, plan, cache_dir)))
    elif progress:
        with _stage("embed", progress) as note:
            note.detail = "reused: every shard is already embedded and verified"
    if pending or not plan.embeddings_ready:
        t.seal_stage(store_settings, plan.embeddings_prefix, plan.embeddings_sharding.n_shards)
    stage_seconds["embed"] = embed["seconds"]

    pending = t.begin_stage(store_settings, plan.losses_prefix, plan.losses_sharding)
    if progress and not pending:
        with _stage("losses", progress) as note:
            note.detail = "reused: every shard's losses are already computed and verified"
    losses = _run_shards(t.loss_shard, pending, what="losses", gpu=cfg.dask.gpu, progress=progress,
                         args=(store_settings, release, plan, cache_dir))
    sealed = t.seal_stage(store_settings, plan.losses_prefix, plan.losses_sharding.n_shards)
    stage_seconds["losses"] = losses["seconds"]

    start = time.perf_counter()
    with _stage("train and analyse", progress) as note:
        metrics = t.train_and_analyse.submit(store_settings, release, plan, settings,
                                             cache_dir).result()
        note.detail = f"{len(metrics.get('validity', {}))} diagnosers"
    stage_seconds["train_and_analyse"] = time.perf_counter() - start

    start = time.perf_counter()
    with _stage("regression", progress) as note:
        regression = t.regression_report(store_settings, release, plan, metrics)
        note.detail = ("no earlier version audited alike" if regression is None else
                       f"against {(regression.get('previous') or {}).get('version')}: "
                       f"{'significant' if regression.get('significant_regression') else 'none significant'}")
    stage_seconds["regression"] = time.perf_counter() - start
    summary = audit.audit_summary(cfg.store, release, plan, sealed_rows=int(sealed["rows"]),
                                  split=metrics.get("split", {}), stage_seconds=stage_seconds,
                                  shard_compute_seconds={"embed": embed["compute_seconds"],
                                                         "losses": losses["compute_seconds"]})
    metrics["summary"] = summary
    with _stage("report", progress) as note:
        report = t.publish_report(store_settings, release, plan, metrics, regression)
        flag = bool(regression and regression.get("significant_regression"))
        manifest = t.write_audit_manifest(store_settings, release, plan, report, summary, flag)
        publish_audit_artifacts(release, metrics, report["uri"], regression)
        emit_audit_events(release.model, release.version, report["uri"], regression)
        note.detail = "HTML report, manifest, Prefect artifacts and events"
    return manifest


@flow(name="audit-new-releases", log_prints=True)
def audit_new_releases(settings: dict[str, Any] | None = None) -> list[str]:
    """Audit every registered release that has no completed audit yet (as subflows)."""
    logger = get_run_logger()
    cfg = load_settings(settings)
    store = audit.get_store(cfg.store)
    todo = registry.unaudited(store)
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


def share_local_prefect_api() -> str | None:
    """Point this process and the Dask workers it spawns at one Prefect API; return its URL.

    Without PREFECT_API_URL, Prefect starts a temporary local server in each process on first use,
    so every Dask worker process would start its own (seconds of start-up each, several servers
    writing one SQLite file). Start that server once here and export its URL before the cluster
    starts; workers then report to it. Does nothing when an API URL is configured or ephemeral
    servers are disabled. Returns the URL exported, else None.
    """
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

    if PREFECT_API_URL.value() or os.environ.get("PREFECT_API_URL"):
        return None
    if not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        return None
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()  # the same instance Prefect's own client uses in this process
    server.start()
    os.environ["PREFECT_API_URL"] = server.api_url
    return server.api_url


def run_audit(model: str, version: str, cfg: Settings, *, progress: bool = False) -> dict[str, Any]:
    """Run `audit_release` in this process with the task runner the settings ask for."""
    if not cfg.dask.address:
        share_local_prefect_api()
    runner = audit_release.with_options(task_runner=make_task_runner(cfg.dask))
    return runner(model=model, version=version, settings=cfg.model_dump(mode="json"), progress=progress)
