"""The sharded stages: embeddings (once per dataset and encoder) and losses (once per release).

The protocol over the store: a stage records its sharding (`sharding.json`) before any part;
each shard writes its part and, beside it, the samples it could not read (`failures-NNNNN.json`);
a part counts as done once its sidecar exists and the part matches it; the stage manifest is
written last, when every part is present and verified. A rerun computes only the missing or
corrupt parts, so no finished work is repeated and no two splits of the dataset are mixed.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
from pydantic import BaseModel, Field, ValidationError

from llm2loss.store import keys as layout
from llm2loss.errors import DataError
from llm2loss.store.keys import unreadable_key
from llm2loss.pipeline.workers import get_encoder, get_model
from llm2loss.store import ArtifactStore

if TYPE_CHECKING:
    from llm2loss.pipeline.context import AuditContext

ATTRIBUTE_PREFIX = "attr__"
#: The stage manifest's field listing every (id, reason) the stage could not read (stored name).
UNREADABLE_FIELD = "failures"


class StageSharding(BaseModel):
    """How a sharded stage splits the dataset: part i holds samples i*shard_size onwards."""

    shard_size: int = Field(ge=1)
    n_shards: int = Field(ge=0)


def recorded_sharding(store: ArtifactStore, prefix: str) -> StageSharding | None:
    """The sharding a stage was begun with, or None for a stage not begun yet."""
    key = layout.sharding_key(prefix)
    if not store.exists(key):
        return None
    try:
        return StageSharding.model_validate(store.read_json(key))
    except ValidationError:
        raise DataError(
            f"{key} is not a valid sharding record (shard_size, n_shards); delete the stage "
            f"{prefix} and rerun the audit to recompute it"
        ) from None


def _check_unrecorded_parts(store: ArtifactStore, prefix: str, sharding: StageSharding) -> None:
    """Refuse parts written before shardings were recorded when they do not fit `sharding`.

    Every part but the last must hold `shard_size` samples (its rows plus the samples it skipped),
    and no part may lie beyond `n_shards`."""
    for index, info in store.done_parts(prefix).items():
        unreadable = unreadable_key(prefix, index)
        skipped = len(store.read_json(unreadable)) if store.exists(unreadable) else 0
        if index >= sharding.n_shards or (
            index < sharding.n_shards - 1 and info.rows + skipped != sharding.shard_size
        ):
            raise DataError(
                f"stage {prefix} holds parts written, before shardings were recorded, with "
                f"another shard size than {sharding.shard_size} (part {index}: {info.rows + skipped} "
                "samples): rerun with the shard_size it was begun with, or delete the stage to "
                "recompute it"
            )


def begin_stage(store: ArtifactStore, prefix: str, sharding: StageSharding) -> list[int]:
    """Record the stage's sharding (first time) and return its shards still to compute.

    The record is created atomically before any part, so every part of a stage comes from one
    split of the dataset; once written it holds for good (even if nothing was computed yet). A
    stage recorded with another sharding is refused: the plan adopts a recorded one, so this means
    two audits began the same stage with different shard sizes at once.
    """
    recorded = recorded_sharding(store, prefix)
    if recorded is None:
        _check_unrecorded_parts(store, prefix, sharding)
        if not store.create_json_if_absent(layout.sharding_key(prefix), sharding.model_dump()):
            recorded = recorded_sharding(store, prefix)  # another run recorded it first
    if recorded is not None and recorded != sharding:
        raise DataError(
            f"stage {prefix} was begun with shards of {recorded.shard_size} ({recorded.n_shards} "
            f"shards), but this audit planned shards of {sharding.shard_size}: rerun the audit "
            "(a new plan adopts the recorded sharding)"
        )
    return pending_shards(store, prefix, sharding.n_shards)


def pending_shards(store: ArtifactStore, prefix: str, n_shards: int) -> list[int]:
    """Shards of a stage whose part is not yet written and verified."""
    done = store.done_parts(prefix)
    pending = []
    for index in range(n_shards):
        info = done.get(index)
        if info is None or not store.verify_part(info):
            pending.append(index)
    return pending


def seal_stage(store: ArtifactStore, prefix: str, n_shards: int) -> dict[str, Any]:
    """Write a stage's manifest once every part is present and verified; returns its counts
    (`rows`, and `unreadable`: how many samples its shards could not read)."""
    missing = pending_shards(store, prefix, n_shards)
    if missing:
        raise DataError(
            f"stage {prefix} is missing parts {missing[:10]}; rerun the audit to compute them"
        )
    done = store.done_parts(prefix)
    parts = [done[i] for i in range(n_shards)]
    unreadable: list[Any] = []
    for index in range(n_shards):
        key = unreadable_key(prefix, index)
        if store.exists(key):
            unreadable.extend(store.read_json(key))
    store.write_stage_manifest(prefix, parts, {UNREADABLE_FIELD: unreadable})
    return {"prefix": prefix, "rows": sum(p.rows for p in parts), "unreadable": len(unreadable)}


def stage_unreadable(store: ArtifactStore, prefix: str) -> list[Any]:
    """The (id, reason) pairs a sealed stage could not read ([] for a stage not sealed)."""
    return (store.read_stage_manifest(prefix) or {}).get(UNREADABLE_FIELD, [])


def embed_shard(ctx: AuditContext, index: int) -> dict[str, Any]:
    """Embed one shard of the dataset and write its part. Returns the part's key, its rows, how
    many samples were unreadable and the seconds the encoder took."""
    from llm2loss.store import embeddings_table

    plan, store = ctx.planned, ctx.store
    shard = ctx.source.read_shard(index, plan.embeddings_sharding.shard_size)
    encoder = get_encoder(plan.encoder_spec)
    start = time.perf_counter()
    # A precomputed encoder looks samples up by id; every other encoder reads the inputs.
    batch = shard.ids if plan.encoder_spec.startswith("precomputed:") else shard.inputs
    matrix = encoder.encode_inputs(batch) if shard.ids else np.zeros((0, encoder.dim), np.float32)
    seconds = time.perf_counter() - start
    store.write_json(unreadable_key(plan.embeddings_prefix, index), shard.unreadable)
    info = store.write_part(plan.embeddings_prefix, index, embeddings_table(shard.ids, matrix))
    return {"key": info.key, "rows": info.rows, "unreadable": len(shard.unreadable), "seconds": seconds}


def loss_shard(ctx: AuditContext, index: int) -> dict[str, Any]:
    """Compute the audited model's per-sample loss on one shard and write its part.

    The part carries the sample's attribute columns (prefixed `attr__`) beside id, loss, label,
    prediction and correctness, so the analysis reads one table per release.
    """
    from llm2loss.losses import compute_losses

    plan, store, release = ctx.planned, ctx.store, ctx.release
    shard = ctx.source.read_shard(index, plan.losses_sharding.shard_size)
    model = get_model(release, ctx.store_settings, ctx.require_cache_dir())
    start = time.perf_counter()
    table = compute_losses(model, shard, task=release.task)
    seconds = time.perf_counter() - start
    table = _with_attributes(table, shard.ids, shard.attributes)
    store.write_json(unreadable_key(plan.losses_prefix, index), shard.unreadable)
    info = store.write_part(plan.losses_prefix, index, table)
    return {"key": info.key, "rows": info.rows, "unreadable": len(shard.unreadable), "seconds": seconds}


def _with_attributes(table: pa.Table, ids: list[str], attributes: pd.DataFrame) -> pa.Table:
    """Append the shard's attribute columns, aligned on id, to a loss table."""
    if attributes is None or attributes.empty or len(attributes.columns) == 0:
        return table
    frame = attributes.copy()
    frame.index = ids
    frame = frame.reindex(table.column("id").to_pylist())
    for column in frame.columns:
        values = frame[column]
        if values.dtype == object:
            values = values.astype("string")
        table = table.append_column(f"{ATTRIBUTE_PREFIX}{column}", pa.array(values, from_pandas=True))
    return table
