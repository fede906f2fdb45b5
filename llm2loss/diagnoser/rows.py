"""Row geometry shared by fitting and scoring: L2 normalisation and centring, in float32.

Embeddings are compared by direction, so every row is scored as if unit-length. Large queries
are never copied whole for that: `inverse_norms` gives the per-row scale (folded into the first
layer by the heads) and `centre_in_place` works on one chunk at a time. Numpy only (no torch).
"""

from __future__ import annotations

import numpy as np

from llm2loss.errors import DataError

__all__ = ["centre_in_place", "inverse_norms", "normalise", "text_mean"]


def normalise(X: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero); float32 in, float32 out."""
    rows, inverse = inverse_norms(X)
    return rows * inverse[:, None]


def inverse_norms(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, 1 / row norm) for scoring rows as if L2-normalised without copying them.

    Rows whose squared norm overflows float32 (finite values above ~1e19) are first divided by
    their largest magnitude, in a copy of the chunk, so they score like any other row."""
    with np.errstate(over="ignore"):
        sq = np.einsum("ij,ij->i", rows, rows)
    huge = ~np.isfinite(sq)
    if huge.any():
        rows = rows.copy()
        rows[huge] /= np.abs(rows[huge]).max(axis=1, keepdims=True)
        sq[huge] = np.einsum("ij,ij->i", rows[huge], rows[huge])
    return rows, (1.0 / np.maximum(np.sqrt(sq), 1e-12)).astype(np.float32)


def centre_in_place(Z: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Subtract `mean` from the rows of Z and renormalise them, in place; returns Z."""
    Z -= mean
    Z *= inverse_norms(Z)[1][:, None]  # centred unit rows cannot overflow: Z is scaled in place
    return Z


def text_mean(stored: np.ndarray | None, X: np.ndarray) -> np.ndarray:
    """The text-reference mean stored at fit, else the mean of the (>= 2 row) query batch
    (normalised first): what gap="center" subtracts from phrase rows."""
    if stored is not None:
        return stored
    if len(X) < 2:
        raise DataError("gap='center' needs a text reference to centre a single phrase: "
                        "pass fit(..., text_reference=phrase_embeddings) or query at least "
                        "2 phrases at once")
    return normalise(X).mean(axis=0)
