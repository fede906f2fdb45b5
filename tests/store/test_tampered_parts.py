"""Sealed parts that verify against their sidecars but hold bad data (whoever wrote the part also
wrote its sidecar): NaN embeddings are named by part and sample id and recomputed on the rerun;
a losses part with another schema is one clear error, not a multi-line ArrowInvalid."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from llm2loss.pipeline import load_audit_data, pending_shards
from llm2loss.config import StoreSettings
from llm2loss.errors import DataError
from llm2loss.store import ArtifactStore, keys

from test_audit_data import EMB_PART, _plan, _write_stages

N = 1200


def _setup(tmp_path):
    settings = StoreSettings(uri=str(tmp_path / "store"))
    store, plan = ArtifactStore(settings.uri), _plan(N)
    X = np.random.default_rng(0).normal(size=(N, 384)).astype(np.float32)
    _write_stages(store, plan, X, set(), set())
    return settings, store, plan, X


def test_nan_rows_in_a_sealed_embeddings_part_are_named_and_recomputed_on_rerun(tmp_path):
    settings, store, plan, X = _setup(tmp_path)
    ids = [f"s{i:05d}" for i in range(EMB_PART, 2 * EMB_PART)]
    bad = X[EMB_PART:2 * EMB_PART].copy()
    bad[[5, 17], 3] = np.nan
    values = pa.FixedSizeListArray.from_arrays(pa.array(bad.reshape(-1)), bad.shape[1])
    store.write_part(plan.embeddings_prefix, 1, pa.table({"id": ids, "embedding": values}))
    parts = store.done_parts(plan.embeddings_prefix)
    store.write_stage_manifest(plan.embeddings_prefix, [parts[i] for i in sorted(parts)], {"failures": []})
    with pytest.raises(DataError) as info:
        load_audit_data(store, plan)
    message = str(info.value)
    assert "part-00001.parquet" in message and "2 of 400 rows" in message
    assert "s00405" in message and "s00417" in message and "\n" not in message
    # The rerun recomputes exactly that part: the stage is no longer sealed and part 1 is pending.
    assert store.read_stage_manifest(plan.embeddings_prefix) is None
    assert pending_shards(store, plan.embeddings_prefix, plan.embeddings_sharding.n_shards) == [1]


def test_a_losses_part_with_another_schema_is_one_clear_error(tmp_path):
    settings, store, plan, _ = _setup(tmp_path)
    odd = pa.table({"id": [f"s{i:05d}" for i in range(1000, N)], "loss": [str(i) for i in range(1000, N)]})
    store.write_part(plan.losses_prefix, 1, odd)
    parts = store.done_parts(plan.losses_prefix)
    store.write_stage_manifest(plan.losses_prefix, [parts[i] for i in sorted(parts)], {"failures": []})
    with pytest.raises(DataError) as info:
        load_audit_data(store, plan)
    message = str(info.value)
    assert "part-00001.parquet" in message and "loss: string" in message and "\n" not in message


def test_nan_losses_are_named_by_sample_id(tmp_path):
    settings, store, plan, _ = _setup(tmp_path)
    loss = np.arange(1000, N, dtype=np.float64)
    loss[7] = np.nan
    store.write_part(plan.losses_prefix, 1, pa.table({"id": [f"s{i:05d}" for i in range(1000, N)], "loss": loss}))
    parts = store.done_parts(plan.losses_prefix)
    store.write_stage_manifest(plan.losses_prefix, [parts[i] for i in sorted(parts)], {"failures": []})
    with pytest.raises(DataError, match=r"1 NaN or infinite losses \(ids \['s01007'\]\)"):
        load_audit_data(store, plan)
    assert keys.part_index(parts[1].key) == 1
