"""Synthetic embeddings with per-sample losses whose structure is known, for tuning and benchmarks.

Embeddings imitate an encoder's: unit vectors clustered around a few dozen concept directions.
Losses are cross-entropy-like (non-negative, heavy right tail):
- "planted": samples near a hidden direction u (cosine above a threshold) lose much more;
- "nonlinear": loss = softplus(f(x) + heavy-tailed noise) with f mixing a linear, a quadratic and
  a sine term of three hidden directions.
"""

from __future__ import annotations

import numpy as np


def embeddings(n: int, dim: int, rng: np.random.Generator, *, n_clusters: int = 30,
               spread: float = 0.8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X, centres, assignment): n unit vectors around `n_clusters` random concept directions."""
    centres = rng.standard_normal((n_clusters, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    assign = rng.integers(0, n_clusters, n)
    X = centres[assign] + spread * rng.standard_normal((n, dim)) / np.sqrt(dim)
    X = (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)
    return X, centres.astype(np.float32), assign


def planted_losses(X: np.ndarray, centres: np.ndarray, rng: np.random.Generator, *,
                   threshold: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """Losses with planted high-loss regions: caps (cosine >= threshold) around `centres`.

    Returns (loss, in_region mask). Outside: Exponential(0.3); inside: plus Exponential(2).
    """
    in_region = ((X @ centres.T) >= threshold).any(axis=1)
    loss = rng.exponential(0.3, len(X)) + in_region * rng.exponential(2.0, len(X))
    return loss, in_region


def nonlinear_losses(X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Softplus of a nonlinear function of three hidden directions plus Student-t(2) noise."""
    dim = X.shape[1]
    A = rng.standard_normal((dim, 3)) / 1.0
    P = X @ A
    P = (P - P.mean(axis=0)) / P.std(axis=0)
    f = 0.8 * P[:, 0] + 0.6 * P[:, 1] ** 2 + np.sin(2.0 * P[:, 2]) - 1.5
    noise = 0.7 * rng.standard_t(2, len(X))
    return np.logaddexp(0.0, f + noise)


def make(kind: str, n: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(X, loss) of the named kind ("planted" or "nonlinear")."""
    rng = np.random.default_rng(seed)
    X, centres, _ = embeddings(n, dim, rng)
    if kind == "planted":
        return X, planted_losses(X, centres[:2], rng)[0]
    if kind == "nonlinear":
        return X, nonlinear_losses(X, rng)
    raise ValueError(f"unknown kind {kind!r}: choose one of planted, nonlinear")
