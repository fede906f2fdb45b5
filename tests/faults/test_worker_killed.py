"""A Dask worker process killed while loss shards run: the audit completes, every id once.

A dedicated LocalCluster (so the session's cluster is left alone) runs a slowed-down spam filter;
once the first loss part is listed, the worker that is busy with another shard is killed with
SIGKILL. Dask reschedules that shard on the surviving worker (the nanny restarts the dead one), the
shard writes its part from scratch, and the stages list every sample exactly once.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from audit_harness import done_indices, plan_of, run_flow, small_settings, stage_ids

from llm2loss import pipeline as stages
from llm2loss import registry
from llm2loss.config import StoreSettings

pytestmark = pytest.mark.integration


def _kill_a_busy_worker(address: str, store, prefix: str, killed: dict, timeout_s: float = 420) -> None:
    """Once a first part of `prefix` is listed, SIGKILL a worker that is running a shard."""
    from distributed import Client

    deadline = time.monotonic() + timeout_s
    with Client(address, timeout=30) as client:
        while time.monotonic() < deadline and not killed:
            if done_indices(store, prefix):
                pids = client.run(os.getpid)
                busy = [addr for addr, keys in client.processing().items() if keys]
                if busy:
                    killed["pid"] = pids[busy[0]]
                    killed["tasks"] = list(client.processing()[busy[0]])
                    os.kill(killed["pid"], signal.SIGKILL)
                    return
            time.sleep(0.2)


def test_audit_survives_a_killed_worker(prefect_server, s3_server, tmp_path, cache_dir, spam_releases):
    from distributed import LocalCluster

    release, weights = spam_releases[0]
    slow = release.model_copy(update={
        "version": "slow-worker", "entrypoint": "fault_models:slow_naive_bayes",
        "metadata": {"entrypoint_kwargs": {"delay_s": 2.0}},
    })
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0") as cluster:
        cfg = small_settings(StoreSettings(uri=str(tmp_path / "store")), cluster.scheduler_address, cache_dir,
                             shard_size=20)
        store = stages.get_store(cfg.store)
        registry.register(store, slow, weights_file=weights)
        plan = plan_of(cfg, slow)
        killed: dict = {}
        killer = threading.Thread(target=_kill_a_busy_worker,
                                  args=(cluster.scheduler_address, store, plan.losses_prefix, killed))
        killer.start()
        try:
            _, state = run_flow(cfg, slow.model, slow.version)
        finally:
            killer.join(timeout=60)
    assert killed.get("pid"), "no worker was busy with a shard to kill"
    manifest = state.result()
    ids = stages.get_source(slow.dataset, str(cache_dir)).ids()
    for prefix in (plan.embeddings_prefix, plan.losses_prefix):
        listed = stage_ids(store, prefix)
        assert sorted(listed) == sorted(ids) and len(set(listed)) == len(listed)
    assert manifest["summary"]["samples_used"] == len(ids)
