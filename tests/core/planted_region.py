"""Small synthetic embeddings with a planted high-loss region, for the core tests.

Embeddings are unit vectors around 12 random concept directions in 64 dims; the samples of
concept 0 (cosine >= 0.5 to its centre) lose much more than the rest, so the right answer is
known: any good diagnoser ranks concept 0 above everything else.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DIM = 64


@dataclass
class Planted:
    X_train: np.ndarray
    loss_train: np.ndarray
    X_test: np.ndarray
    loss_test: np.ndarray
    region_test: np.ndarray   # bool: test rows inside the planted region
    centres: np.ndarray       # (12, DIM); centres[0] is the planted region's concept


def make_planted(n: int = 1600, seed: int = 0) -> Planted:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((12, DIM))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    assign = rng.integers(0, 12, n)
    X = centres[assign] + 0.6 * rng.standard_normal((n, DIM)) / np.sqrt(DIM)
    X = (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)
    region = X @ centres[0] >= 0.5
    loss = rng.exponential(0.3, n) + region * (1.0 + rng.exponential(2.0, n))
    cut = n // 2
    return Planted(X[:cut], loss[:cut], X[cut:], loss[cut:], region[cut:],
                   centres.astype(np.float32))
