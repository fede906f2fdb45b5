"""A rerun with another `shard_size`: stages keep the sharding they were begun with.

Parts are numbered by shard, so a stage half-computed with shards of 40 and resumed with shards of
25 would take part 1 (samples 40-79) for shard 1 (samples 25-49): samples duplicated and lost.
Each stage records its sharding before its first part; a later plan adopts the recorded one.
"""

from __future__ import annotations

import pytest
from audit_harness import (
    LIMIT,
    N_SHARDS,
    SHARD_SIZE,
    count_shard_runs,
    local_audit_setup,
    plan_of,
    run_flow,
    small_settings,
    stage_ids,
)

from llm2loss import pipeline as stages
from llm2loss.errors import DataError

pytestmark = pytest.mark.integration

OTHER_SIZE = 25


def test_a_stage_begun_with_one_shard_size_is_resumed_with_it(services, tmp_path, cache_dir, spam_releases):
    (v1, _), (v2, _) = spam_releases
    cfg, store = local_audit_setup(tmp_path, services.scheduler_address, cache_dir, spam_releases)

    # An audit with shards of 40 dies after two embeddings parts.
    plan = plan_of(cfg, v1)
    assert stages.begin_stage(stages.get_store(cfg.store), plan.embeddings_prefix, plan.embeddings_sharding) == list(range(N_SHARDS))
    for index in (0, 1):
        stages.embed_shard(stages.AuditContext.of(cfg, v1).with_plan(plan), index)

    # The rerun asks for shards of 25; the half-done embeddings stage keeps its shards of 40.
    resized = small_settings(cfg.store, services.scheduler_address, cache_dir, shard_size=OTHER_SIZE)
    replanned = plan_of(resized, v1)
    assert replanned.embeddings_sharding == plan.embeddings_sharding
    assert replanned.losses_sharding.shard_size == OTHER_SIZE  # a stage not begun takes the settings
    run_id, _ = run_flow(resized, v1.model, v1.version)
    assert count_shard_runs(run_id, "embed") == N_SHARDS - 2  # the two finished parts were kept
    assert count_shard_runs(run_id, "loss") == -(-LIMIT // OTHER_SIZE)
    for prefix in (plan.embeddings_prefix, plan.losses_prefix):
        ids = stage_ids(store, prefix)
        assert len(ids) == len(set(ids)) == LIMIT  # every sample exactly once

    # v2 with shards of 25 reuses the sealed embeddings (shards of 40) without computing any.
    run_id, state = run_flow(resized, v2.model, v2.version)
    assert count_shard_runs(run_id, "embed") == 0
    assert len(store.read_stage_manifest(plan.embeddings_prefix)["parts"]) == N_SHARDS
    assert state.result()["summary"]["samples_used"] == LIMIT


def test_a_stage_is_not_begun_twice_with_different_shardings(tmp_path, cache_dir, spam_releases):
    """Two plans racing on one stage: the second sharding is refused with the fix, not mixed in."""
    release, _ = spam_releases[0]
    cfg, _ = local_audit_setup(tmp_path, "", cache_dir, spam_releases[:1])
    plan = plan_of(cfg, release)
    stages.begin_stage(stages.get_store(cfg.store), plan.losses_prefix, plan.losses_sharding)
    other = stages.StageSharding(shard_size=OTHER_SIZE, n_shards=-(-LIMIT // OTHER_SIZE))
    with pytest.raises(DataError, match=rf"begun with shards of {SHARD_SIZE}.*planned shards of {OTHER_SIZE}.*rerun"):
        stages.begin_stage(stages.get_store(cfg.store), plan.losses_prefix, other)
    assert stages.begin_stage(stages.get_store(cfg.store), plan.losses_prefix, plan.losses_sharding) == list(range(N_SHARDS))


def test_parts_written_before_shardings_were_recorded_must_fit_the_sharding(tmp_path, cache_dir, spam_releases):
    """A stage from before the sharding record: resumed with its own shard size it is adopted and
    recorded; with another one it is refused, naming the fix, and nothing is written."""
    release, _ = spam_releases[0]
    cfg, store = local_audit_setup(tmp_path, "", cache_dir, spam_releases[:1])
    plan = plan_of(cfg, release)
    for index in (0, 1):  # written the old way: no sharding record
        stages.loss_shard(stages.AuditContext.of(cfg, release).with_plan(plan), index)
    other = stages.StageSharding(shard_size=OTHER_SIZE, n_shards=-(-LIMIT // OTHER_SIZE))
    with pytest.raises(DataError, match=rf"before shardings were recorded.*another shard size than {OTHER_SIZE}.*rerun with the shard_size"):
        stages.begin_stage(stages.get_store(cfg.store), plan.losses_prefix, other)
    assert stages.recorded_sharding(store, plan.losses_prefix) is None
    assert stages.begin_stage(stages.get_store(cfg.store), plan.losses_prefix, plan.losses_sharding) == list(range(2, N_SHARDS))
    assert stages.recorded_sharding(store, plan.losses_prefix) == plan.losses_sharding


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_two_runs_beginning_a_stage_at_once_agree_on_one_sharding(backend, request, tmp_path):
    """Both check for a record, find none and write one: the record is created atomically, so
    exactly one sharding wins and the other run is refused (20 rounds, two threads each)."""
    import threading

    from llm2loss.config import StoreSettings

    if backend == "s3":
        s3 = request.getfixturevalue("s3_store")
        settings = StoreSettings(uri=s3.uri, endpoint_url=request.getfixturevalue("s3_server").endpoint_url)
    else:
        settings = StoreSettings(uri=str(tmp_path / "store"))
    shardings = [stages.StageSharding(shard_size=SHARD_SIZE, n_shards=N_SHARDS),
                 stages.StageSharding(shard_size=OTHER_SIZE, n_shards=-(-LIMIT // OTHER_SIZE))]
    for round_ in range(20):
        prefix = f"race/r{round_}/embeddings"
        barrier = threading.Barrier(2)
        outcome: dict[int, object] = {}

        def begin(i: int) -> None:
            barrier.wait()
            try:
                outcome[i] = stages.begin_stage(stages.get_store(settings), prefix, shardings[i])
            except DataError as exc:
                outcome[i] = exc

        threads = [threading.Thread(target=begin, args=(i,)) for i in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        winners = [i for i in (0, 1) if isinstance(outcome[i], list)]
        assert len(winners) == 1, outcome
        assert stages.recorded_sharding(stages.get_store(settings), prefix) == shardings[winners[0]]
        assert "was begun with shards of" in str(outcome[1 - winners[0]])
