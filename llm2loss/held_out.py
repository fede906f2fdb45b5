"""An audit's held-out samples in the store: written once by the audit, read by every query.

Phrase findings are grounded in the held-out samples a phrase describes (`llm2loss.grounding`).
The audit writes those samples as one Parquet table (id, loss, error, preview, embedding) and
records its key, rows and sha256 in metrics.json, so a query on the finished audit answers with
the same measured columns as the report. The table is read back from a store that others can
write to: the sha256 must match the record and the schema, sizes and values are checked before
anything is built from it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from llm2loss.errors import DataError
from llm2loss.grounding import Reference
from llm2loss.store import ArtifactStore, PartInfo, embeddings_table, table_to_matrix

COLUMNS = ("id", "loss", "error", "preview", "embedding")
MAX_PREVIEW_CHARS = 16_384


def write_held_out(store: ArtifactStore, key: str, ids: list[str], X: np.ndarray,
                   loss: np.ndarray, error: np.ndarray | None, previews: list[str]) -> PartInfo:
    """Write the held-out table at `key`; returns its PartInfo (for metrics.json)."""
    base = embeddings_table(ids, np.ascontiguousarray(X, dtype=np.float32))
    n = len(ids)
    table = pa.table({
        "id": base.column("id"),
        "loss": pa.array(np.asarray(loss, dtype=np.float64)),
        "error": pa.array(np.full(n, np.nan) if error is None
                          else np.asarray(error, dtype=np.float64)),
        "preview": pa.array([str(p)[:MAX_PREVIEW_CHARS] for p in previews], type=pa.string()),
        "embedding": base.column("embedding"),
    })
    return store.write_table(key, table)


def read_held_out(store: ArtifactStore, record: Any, *, dim: int | None = None,
                  data_mean: Any = None, text_mean: Any = None) -> Reference:
    """The Reference of a finished audit from its metrics.json record {key, rows, sha256, bytes}.

    data_mean / text_mean: the primary diagnoser's centring means for gap="center" audits.

    Raises DataError naming the problem and the fix when the record or the table is malformed.
    """
    try:
        info = PartInfo.model_validate(record)
    except Exception as exc:  # pydantic's ValidationError, or a record that is not a dict
        raise DataError(f"the audit's held_out record is malformed ({str(exc).splitlines()[0]}); "
                        "audit the release again") from None
    table = store.read_table(info.key, expect=info)  # StoreError when the sha256 differs
    missing = [c for c in COLUMNS if c not in table.column_names]
    if missing:
        raise DataError(f"held-out table {info.key} lacks columns {missing}; audit the release "
                        "again to rewrite it")
    ids, X = table_to_matrix(table.select(["id", "embedding"]))
    if dim is not None and X.shape[1] != dim:
        raise DataError(f"held-out table {info.key} has {X.shape[1]}-d embeddings but the "
                        f"diagnosers are {dim}-d; audit the release again")
    try:
        loss = table.column("loss").to_numpy(zero_copy_only=False).astype(np.float64)
        error = table.column("error").to_numpy(zero_copy_only=False).astype(np.float64)
    except (pa.ArrowInvalid, TypeError, ValueError) as exc:
        raise DataError(f"held-out table {info.key} has non-numeric loss/error ({exc}); audit "
                        "the release again") from None
    previews = [p if isinstance(p, str) else "" for p in table.column("preview").to_pylist()]
    return Reference(X, loss, error=None if np.isnan(error).all() else error, ids=ids,
                     previews=previews, data_mean=data_mean, text_mean=text_mean)
