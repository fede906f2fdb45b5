"""The flow process killed mid-audit, then rerun: no finished shard is recomputed, same result.

The audit runs in a child process (as a deployment's flow run would) on the session's Dask cluster
and is killed with SIGKILL once some loss parts are listed in the store. It leaves its audit lock
behind; the rerun breaks it at once because the lock's owner (host, pid, start time) is a process
of this host that no longer runs, instead of waiting for the lock to expire.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import numpy as np
import psutil
import pyarrow as pa
import pytest
from audit_harness import (
    REPO,
    child_command,
    count_shard_runs,
    done_indices,
    plan_of,
    run_flow,
    small_settings,
    stage_ids,
    subprocess_env,
)

from llm2loss.pipeline.locks import LOCK_TTL_S, heartbeat, lock_owner, owner_is_dead, take_lock
from llm2loss import audits
from llm2loss import pipeline as stages
from llm2loss import registry
from llm2loss.store import keys as layout
from llm2loss.config import StoreSettings
from llm2loss.losses import compute_losses
from llm2loss.store import table_to_matrix

pytestmark = pytest.mark.integration


def test_a_live_owner_is_alive_and_a_dead_one_is_dead():
    assert not owner_is_dead(lock_owner())
    child = subprocess.Popen(["sleep", "30"])
    try:
        host, _pid, _started, token = lock_owner().rsplit(":", 3)
        started = psutil.Process(child.pid).create_time()
        theirs = f"{host}:{child.pid}:{started:.3f}:{token}"
        assert not owner_is_dead(theirs)
        assert owner_is_dead(f"{host}:{child.pid}:{started - 100:.3f}:{token}")  # a reused pid
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    assert owner_is_dead(theirs)
    assert not owner_is_dead(f"another-host:{child.pid}:{started:.3f}:{token}")  # not ours to judge
    assert not owner_is_dead("not an owner")


def test_a_lock_left_by_a_dead_process_is_broken_and_a_live_one_is_not(local_store):
    key = layout.audit_lock_key("m", "v1")
    child = subprocess.Popen(["sleep", "30"])
    host, _pid, _started, token = lock_owner().rsplit(":", 3)
    started = psutil.Process(child.pid).create_time()
    theirs = f"{host}:{child.pid}:{started:.3f}:{token}"
    assert local_store.acquire_lock(key, theirs, LOCK_TTL_S)

    def try_lock(owner: str) -> bool:
        return take_lock(local_store, key, owner)

    try:
        assert not try_lock(lock_owner())  # the holder runs: wait for it
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    mine = lock_owner()
    assert try_lock(mine)  # the holder died: its lock is broken at once
    assert local_store.read_json(key)["owner"] == mine


def test_a_running_audit_renews_its_lock(local_store):
    key = layout.audit_lock_key("m", "v1")
    owner = lock_owner()
    assert take_lock(local_store, key, owner)
    first = local_store.read_json(key)["expires_at"]
    with heartbeat(local_store, key, owner, every_s=0.2):
        time.sleep(1.0)
    renewed = local_store.read_json(key)
    assert renewed["owner"] == owner and renewed["expires_at"] > first


def _wait_for(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def _executing(dask_worker) -> int:
    return len(dask_worker.state.executing)


def _cluster_idle(address: str) -> bool:
    """No task runs on any worker, including shards the killed run's client no longer wants
    (Dask forgets them on the scheduler but cannot stop a running thread: they still finish)."""
    from distributed import Client

    with Client(address, timeout=30) as client:
        return not any(client.run(_executing).values()) and not any(client.processing().values())


def test_killed_flow_rerun_recomputes_only_unfinished_shards(services, tmp_path, cache_dir, spam_releases):
    from prefect.settings import PREFECT_API_URL

    release, weights = spam_releases[0]
    slow = release.model_copy(update={
        "version": "slow", "entrypoint": "fault_models:slow_naive_bayes",
        "metadata": {"entrypoint_kwargs": {"delay_s": 2.0}},
    })
    # Eight shards of 20: the kill lands while several are queued or running.
    cfg = small_settings(StoreSettings(uri=str(tmp_path / "store")), services.scheduler_address, cache_dir,
                         shard_size=20)
    store = stages.get_store(cfg.store)
    registry.register(store, slow, weights_file=weights)
    plan = plan_of(cfg, slow)
    n_shards = plan.losses_sharding.n_shards

    log = tmp_path / "child.log"
    with open(log, "wb") as out:
        child = subprocess.Popen(child_command(slow.model, slow.version), cwd=REPO, stdout=out,
                                 stderr=subprocess.STDOUT, env=subprocess_env(cfg, PREFECT_API_URL.value()))
    try:
        _wait_for(lambda: len(done_indices(store, plan.losses_prefix)) >= 1 or child.poll() is not None,
                  600, "a first loss part")
        assert child.poll() is None, f"the audit ended before it was killed:\n{log.read_text()[-3000:]}"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    lock_key = layout.audit_lock_key(slow.model, slow.version)
    assert store.exists(lock_key), "the killed run should have left its lock"
    _wait_for(lambda: _cluster_idle(cfg.dask.address), 120, "the shards in flight to end")
    losses_done = done_indices(store, plan.losses_prefix)
    time.sleep(3)
    assert done_indices(store, plan.losses_prefix) == losses_done, "a shard was still being written"
    embeds_done = done_indices(store, plan.embeddings_prefix)
    assert 1 <= len(losses_done) < n_shards, losses_done
    assert audits.finished_manifest(stages.get_store(cfg.store), slow.model, slow.version) is None

    started = time.monotonic()
    run_id, state = run_flow(cfg, slow.model, slow.version)
    assert time.monotonic() - started < LOCK_TTL_S / 4  # the dead run's lock did not make it wait
    assert count_shard_runs(run_id, "loss") == n_shards - len(losses_done)
    assert count_shard_runs(run_id, "embed") == n_shards - len(embeds_done)
    assert not store.exists(lock_key)

    # The result equals an uninterrupted computation, shard by shard, with the same model and encoder.
    source = stages.get_source(slow.dataset, str(cache_dir))
    model = stages.get_model(slow, cfg.store, str(cache_dir))
    encoder = stages.get_encoder(plan.encoder_spec)
    shards = [source.read_shard(i, plan.losses_sharding.shard_size) for i in range(n_shards)]
    expected = pa.concat_tables([compute_losses(model, s, task=slow.task) for s in shards]).sort_by("id")
    got = store.read_stage_table(plan.losses_prefix, columns=expected.column_names).sort_by("id")
    assert got.column("id").to_pylist() == expected.column("id").to_pylist()
    np.testing.assert_allclose(got.column("loss").to_numpy(), expected.column("loss").to_numpy(), rtol=1e-12)
    assert got.select(["label", "pred", "correct"]).equals(expected.select(["label", "pred", "correct"]))
    ids, matrix = table_to_matrix(store.read_stage_table(plan.embeddings_prefix))
    assert ids == [i for s in shards for i in s.ids] == stage_ids(store, plan.embeddings_prefix)
    reference = np.concatenate([encoder.encode_inputs(s.inputs) for s in shards])
    np.testing.assert_allclose(matrix, reference, atol=1e-5)
