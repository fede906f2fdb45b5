"""Embeddings as Arrow tables: `id: string, embedding: fixed_size_list<float32>[dim]`.

The one table shape the store holds embeddings in (see DESIGN.md "Data in the store"), and the
way back to a float32 matrix. A C-contiguous float32 matrix goes in without a copy; one chunk
comes out without a copy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from llm2loss.errors import DataError


def embeddings_table(ids: Sequence[str], matrix: np.ndarray) -> pa.Table:
    """A table `id: string, embedding: fixed_size_list<float32>[dim]` over `matrix`.

    A C-contiguous float32 matrix is wrapped without copying; anything else is converted once.
    Raises DataError for a non-2-D matrix, a row count that differs from `ids`, or NaN/inf.
    """
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[1] < 1:
        raise DataError(
            f"embeddings must be a 2-D array (n, dim), got shape {matrix.shape}; "
            "reshape it to one row per sample"
        )
    if matrix.shape[0] != len(ids):
        raise DataError(f"{len(ids)} ids but {matrix.shape[0]} embedding rows; pass one row per id")
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    if not np.isfinite(matrix).all():
        raise DataError("embeddings contain NaN or inf; check the encoder's input and output")
    values = pa.array(matrix.reshape(-1), type=pa.float32())
    column = pa.FixedSizeListArray.from_arrays(values, matrix.shape[1])
    return pa.table({"id": pa.array(list(ids), type=pa.string()), "embedding": column})


def table_to_matrix(table: pa.Table) -> tuple[list[str], np.ndarray]:
    """The ids and the float32 (n, dim) matrix of an embeddings table.

    One chunk is viewed without copying; several chunks are joined with one copy.
    """
    if "id" not in table.column_names or "embedding" not in table.column_names:
        raise DataError(
            f"an embeddings table needs columns 'id' and 'embedding', got {table.column_names}; "
            "build it with llm2loss.store.embeddings_table"
        )
    column = table.column("embedding")
    if not pa.types.is_fixed_size_list(column.type):
        raise DataError(
            f"column 'embedding' has type {column.type}, expected fixed_size_list<float32>; "
            "build it with llm2loss.store.embeddings_table"
        )
    if column.null_count:
        raise DataError(f"{column.null_count} embeddings are null; recompute those shards")
    dim = column.type.list_size
    chunks = [chunk.flatten().to_numpy(zero_copy_only=False) for chunk in column.chunks]
    if not chunks:
        flat = np.empty(0, dtype=np.float32)
    elif len(chunks) == 1:
        flat = chunks[0]
    else:
        flat = np.concatenate(chunks)
    ids = table.column("id").to_pylist()
    return ids, flat.astype(np.float32, copy=False).reshape(-1, dim)
