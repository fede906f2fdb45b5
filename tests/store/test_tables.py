"""Embeddings tables: the one shape embeddings are stored in, and the way back to a matrix."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from llm2loss.errors import DataError
from llm2loss.store import embeddings_table, table_to_matrix


def test_table_to_matrix_views_one_chunk_without_copy() -> None:
    matrix = np.arange(12, dtype=np.float32).reshape(6, 2)
    table = embeddings_table(list("abcdef"), matrix)
    _, back = table_to_matrix(table)
    assert np.shares_memory(back, matrix)
    _, sliced = table_to_matrix(table.slice(2, 3))
    assert np.array_equal(sliced, matrix[2:5])


def test_table_to_matrix_joins_chunks() -> None:
    a = embeddings_table(["a", "b"], np.ones((2, 3), dtype=np.float32))
    b = embeddings_table(["c"], np.zeros((1, 3), dtype=np.float32))
    ids, back = table_to_matrix(pa.concat_tables([a, b]))
    assert ids == ["a", "b", "c"] and back.shape == (3, 3) and back[2].sum() == 0


@pytest.mark.parametrize(
    ("ids", "matrix", "message"),
    [
        (["a"], np.ones(3, dtype=np.float32), "2-D"),
        (["a", "b"], np.ones((1, 3), dtype=np.float32), "2 ids but 1"),
        (["a"], np.array([[np.nan, 1.0]]), "NaN"),
    ],
)
def test_embeddings_table_rejects_bad_input(
    ids: list[str], matrix: np.ndarray, message: str
) -> None:
    with pytest.raises(DataError, match=message):
        embeddings_table(ids, matrix)


def test_table_to_matrix_rejects_wrong_columns() -> None:
    with pytest.raises(DataError, match="needs columns"):
        table_to_matrix(pa.table({"id": ["a"]}))
    with pytest.raises(DataError, match="fixed_size_list"):
        table_to_matrix(pa.table({"id": ["a"], "embedding": [1.0]}))
