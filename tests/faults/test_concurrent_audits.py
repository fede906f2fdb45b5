"""Two audits of the same release started at once: one works, the other waits for its manifest.

Both flow runs start together in two threads against the same store and cluster. Exactly one of
them runs shard tasks; the other runs none and returns the same manifest. The store holds one part
per shard, one manifest per stage, and no lock afterwards.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from audit_harness import N_SHARDS, count_shard_runs, plan_of, run_flow, small_settings, stage_ids

from llm2loss import pipeline as stages
from llm2loss import registry
from llm2loss.store import keys as layout
from llm2loss.config import StoreSettings

pytestmark = pytest.mark.integration


def test_two_audits_at_once_do_the_work_once(services, tmp_path, cache_dir, spam_releases):
    release, weights = spam_releases[0]
    cfg = small_settings(StoreSettings(uri=str(tmp_path / "store")), services.scheduler_address, cache_dir)
    store = stages.get_store(cfg.store)
    registry.register(store, release, weights_file=weights)

    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = list(pool.map(lambda _: run_flow(cfg, release.model, release.version), range(2)))
    (run_a, state_a), (run_b, state_b) = runs
    assert state_a.result() == state_b.result()
    loss_runs = sorted(count_shard_runs(run, "loss") for run in (run_a, run_b))
    embed_runs = sorted(count_shard_runs(run, "embed") for run in (run_a, run_b))
    assert loss_runs == [0, N_SHARDS] and embed_runs == [0, N_SHARDS]

    plan = plan_of(cfg, release)
    for prefix in (plan.embeddings_prefix, plan.losses_prefix):
        keys = store.list(f"{prefix}/")
        assert sum(k.endswith(".parquet") for k in keys) == N_SHARDS
        assert sum(k.rsplit("/", 1)[-1].startswith("part-") and k.endswith(".json") for k in keys) == N_SHARDS
        ids = stage_ids(store, prefix)
        assert len(ids) == len(set(ids))
    assert not store.exists(layout.audit_lock_key(release.model, release.version))
