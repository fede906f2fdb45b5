"""The paper's metrics (LLM2Loss Tables 1-5), computed with scipy.stats and sklearn.metrics.

- `correlations`: predicted vs true per-sample loss, Pearson / Spearman / Kendall with p-values.
- `familiarity_auroc`: in-domain vs out-of-domain familiarity scores.
- `attribute_disparity`: m(attr) - m(not attr) for one attribute, on the data side (e.g. mean loss
  or error rate of samples with/without the attribute) or the phrase side (member estimates).
- `disparity_agreement`: do the disparities predicted from phrases agree with the measured ones?
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats
from sklearn.metrics import roc_auc_score

from llm2loss.errors import DataError


def _finite_vector(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise DataError(f"{name} must be 1-D, got shape {arr.shape}; flatten it")
    bad = ~np.isfinite(arr)
    if bad.any():
        first = ", ".join(str(i) for i in np.flatnonzero(bad)[:5])
        raise DataError(f"{name} has {int(bad.sum())} NaN or inf values (first indices: "
                        f"{first}); drop those entries")
    return arr


def _paired(a: Any, b: Any, names: tuple[str, str], *, min_len: int = 2
            ) -> tuple[np.ndarray, np.ndarray]:
    x, y = _finite_vector(a, names[0]), _finite_vector(b, names[1])
    if len(x) != len(y):
        raise DataError(f"{names[0]} has {len(x)} values but {names[1]} has {len(y)}; pass "
                        f"one value of each per item")
    if len(x) < min_len:
        raise DataError(f"need at least {min_len} paired values to correlate, got {len(x)}; "
                        f"pass more items")
    for arr, name in ((x, names[0]), (y, names[1])):
        if np.ptp(arr) == 0:
            raise DataError(f"{name} is constant, so a correlation is undefined; check that "
                            f"it was computed from varying inputs")
    return x, y


def _three(x: np.ndarray, y: np.ndarray) -> dict[str, tuple[float, float]]:
    out = {}
    for name, fn in (("pearson", stats.pearsonr), ("spearman", stats.spearmanr),
                     ("kendall", stats.kendalltau)):
        res = fn(x, y)
        out[name] = (float(res.statistic), float(res.pvalue))
    return out


def correlations(pred: Any, true: Any) -> dict[str, tuple[float, float]]:
    """{"pearson": (r, p), "spearman": (rho, p), "kendall": (tau, p)} of pred vs true."""
    x, y = _paired(pred, true, ("pred", "true"))
    return _three(x, y)


def familiarity_auroc(scores_in: Any, scores_out: Any) -> float:
    """AUROC of familiarity scores: in-domain (positive) vs out-of-domain (negative)."""
    s_in = _finite_vector(scores_in, "scores_in")
    s_out = _finite_vector(scores_out, "scores_out")
    for arr, name in ((s_in, "scores_in"), (s_out, "scores_out")):
        if len(arr) == 0:
            raise DataError(f"{name} is empty; AUROC needs at least one in-domain and one "
                            f"out-of-domain score")
    labels = np.r_[np.ones(len(s_in)), np.zeros(len(s_out))]
    return float(roc_auc_score(labels, np.r_[s_in, s_out]))


def attribute_disparity(metric_values: Any, mask: Any) -> dict[str, float | int]:
    """Disparity of a metric between items with (mask True) and without an attribute.

    Returns signed = mean(with) - mean(without) (positive: the attribute side is worse when the
    metric is a loss/error), absolute = |signed|, mean_attr, mean_not, n_attr, n_not.
    """
    values = _finite_vector(metric_values, "metric_values")
    m = np.asarray(mask)
    if m.shape != values.shape:
        raise DataError(f"mask has shape {m.shape} but metric_values has {values.shape}; pass "
                        f"one True/False per value")
    if m.dtype != bool:
        if not np.isin(m, [0, 1]).all():
            raise DataError("mask must be boolean (or 0/1); convert the attribute column first")
        m = m.astype(bool)
    n_attr, n_not = int(m.sum()), int((~m).sum())
    if n_attr == 0 or n_not == 0:
        side = "with" if n_attr == 0 else "without"
        raise DataError(f"no items {side} the attribute, so its disparity is undefined; skip "
                        f"this attribute or use more data")
    mean_attr, mean_not = float(values[m].mean()), float(values[~m].mean())
    signed = mean_attr - mean_not
    return {"signed": signed, "absolute": abs(signed), "mean_attr": mean_attr,
            "mean_not": mean_not, "n_attr": n_attr, "n_not": n_not}


def disparity_agreement(true: Any, predicted: Any) -> dict[str, Any]:
    """Agreement of predicted per-attribute disparities with the measured ones.

    `true`, `predicted`: signed disparities, one per attribute. Returns pearson/spearman/kendall
    (r, p) plus sign_accuracy, the fraction of attributes whose sign is predicted right.
    """
    x, y = _paired(true, predicted, ("true", "predicted"))
    out: dict[str, Any] = _three(x, y)
    out["sign_accuracy"] = float(np.mean(np.sign(x) == np.sign(y)))
    return out
