"""Parts corrupted or deleted behind the manifest's back: detected, never read as good, recomputed.

After a finished audit, one loss part has bytes flipped (same size) and one embeddings part is
deleted. Reading the stage refuses the corrupt part (StoreError naming it); after deleting the
audit manifest, a rerun recomputes exactly those two shards and the stages verify again.
"""

from __future__ import annotations

import pytest
from audit_harness import (
    N_SHARDS,
    count_shard_runs,
    local_audit_setup,
    plan_of,
    run_flow,
    stage_ids,
)

from llm2loss import pipeline as stages
from llm2loss.store import keys as layout
from llm2loss.errors import StoreError

pytestmark = pytest.mark.integration


def _flip_bytes(store, key: str) -> None:
    data = bytearray(store.read_bytes(key))
    middle = len(data) // 2
    data[middle : middle + 8] = bytes(b ^ 0xFF for b in data[middle : middle + 8])
    store.write_bytes(key, bytes(data))


def test_corrupt_and_deleted_parts_are_refused_then_recomputed(services, tmp_path, cache_dir, spam_releases):
    release, _ = spam_releases[0]
    cfg, store = local_audit_setup(tmp_path, services.scheduler_address, cache_dir, spam_releases[:1])
    run_flow(cfg, release.model, release.version)
    plan = plan_of(cfg, release)
    good_losses = store.read_stage_table(plan.losses_prefix).sort_by("id")

    _flip_bytes(store, layout.part_key(plan.losses_prefix, 1))
    store.delete_prefix(layout.part_key(plan.embeddings_prefix, 2))
    with pytest.raises(StoreError, match=r"part-00001.parquet.*corrupt.*sha256.*rerun"):
        store.read_stage_table(plan.losses_prefix)
    assert store.read_stage_manifest(plan.embeddings_prefix) is None  # a listed part is missing

    # The finished audit is still what it was; deleting its manifest asks for a rerun.
    store.delete_prefix(layout.audit_manifest_key(release.model, release.version))
    run_id, _ = run_flow(cfg, release.model, release.version)
    assert count_shard_runs(run_id, "loss") == 1
    assert count_shard_runs(run_id, "embed") == 1
    assert store.read_stage_table(plan.losses_prefix).sort_by("id").equals(good_losses)
    ids = stage_ids(store, plan.embeddings_prefix)
    assert len(ids) == len(set(ids)) == len(good_losses)
    assert len(store.read_stage_manifest(plan.losses_prefix)["parts"]) == N_SHARDS


def test_corrupt_embeddings_under_a_sealed_stage_are_recomputed(services, tmp_path, cache_dir, spam_releases):
    """A sealed embeddings stage is reused by later releases: it is verified, not trusted."""
    (v1, _), (v2, _) = spam_releases
    cfg, store = local_audit_setup(tmp_path, services.scheduler_address, cache_dir, spam_releases)
    plan = plan_of(cfg, v1)
    for index in range(N_SHARDS):
        stages.embed_shard(stages.AuditContext.of(cfg, v1).with_plan(plan), index)
    stages.seal_stage(stages.get_store(cfg.store), plan.embeddings_prefix, N_SHARDS)
    _flip_bytes(store, layout.part_key(plan.embeddings_prefix, 0))
    assert store.read_stage_manifest(plan.embeddings_prefix) is not None  # sealed, all parts present

    run_id, _ = run_flow(cfg, v2.model, v2.version)
    assert count_shard_runs(run_id, "embed") == 1
    assert len(store.read_stage_table(plan.embeddings_prefix)) == sum(
        p.rows for p in store.read_stage_manifest(plan.embeddings_prefix)["parts"]
    )
