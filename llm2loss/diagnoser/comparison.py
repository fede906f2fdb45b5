"""A comparison of two sets of rows over the ensemble members, and P(a above b) from it.

Numpy only, so the torch forward (`scoring`) and the torch-free one (`numpy_scoring`) share one
definition of what a comparison and its probability are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Comparison", "p_higher"]


@dataclass(frozen=True)
class Comparison:
    """Row-wise comparison of a against b over the ensemble members.

    p_higher: (k,) fraction of members scoring a above b, a tie counting one half; NaN with a
        single member, which can show no disagreement and so gives no probability.
    differences: (n_members, k) member score of a minus member score of b.
    quartiles: (5, k) min, q1, median, q3, max of the differences.
    """

    p_higher: np.ndarray
    differences: np.ndarray
    quartiles: np.ndarray


def p_higher(differences: np.ndarray) -> np.ndarray:
    """P(a above b) per column of member differences (K, k): ties count one half.

    A zero difference is no evidence either way, so `compare(X, X)` gives 0.5, never 0. With one
    member there is no spread to read a probability from: NaN.
    """
    diff = np.asarray(differences, dtype=np.float64)
    if diff.shape[0] < 2:
        return np.full(diff.shape[1:], np.nan)
    return (diff > 0).mean(axis=0) + 0.5 * (diff == 0).mean(axis=0)
