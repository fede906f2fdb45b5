"""The percentile scale: phrase estimates placed among the held-out samples' own scores.

Rank scores are standardised per member and regress outputs are in the audited model's loss
units, so neither compares across versions of a model. Every phrase estimate is therefore also
given as a percentile: where the phrase's score falls within the same member's scores of the
held-out samples (0 = below every held-out sample, 100 = above every one). The per-member
quantiles of the held-out scores (`QUANTILE_GRID`) are kept in `metrics["score_quantiles"]`,
which is what `llm2loss.regression.compare_versions` uses to put two versions on one scale.
Numpy only (no torch).
"""

from __future__ import annotations

import numpy as np

__all__ = ["QUANTILE_GRID", "percentiles", "quartiles"]

QUANTILE_GRID = np.linspace(0.0, 1.0, 101)


def percentiles(member_scores: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """Per-member percentile (0-100) of scores (K, k) among held-out scores given as quantiles (K, Q)."""
    grid = np.linspace(0.0, 100.0, quantiles.shape[1])
    return np.stack([np.interp(s, q, grid) for s, q in zip(member_scores, quantiles)])


def quartiles(values: np.ndarray) -> list[float]:
    """min, q1, median, q3, max of a 1-D array."""
    return np.quantile(values, [0.0, 0.25, 0.5, 0.75, 1.0]).tolist()

