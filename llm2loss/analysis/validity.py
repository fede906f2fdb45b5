"""The paper's Table 2: how well each loss diagnoser predicts the held-out loss.

Per loss diagnoser, Pearson, Spearman and Kendall correlations (with p-values, via
`llm2loss.evaluation`) between predicted and true held-out loss: for each member (mean and std of
r over members, median p) and for the ensemble's mean and median aggregation. The members'
held-out scores are returned too: their quantiles are the percentile scale (`scale`).
Table 4 (0-shot AUROC vs measured disparity) is measured in `grounded.validity_correlation`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from llm2loss import evaluation
from llm2loss.diagnoser import LossDiagnoser

__all__ = ["CORRELATIONS", "correlation_dict", "validity_row"]

CORRELATIONS = ("pearson", "spearman", "kendall")


def correlation_dict(pred: np.ndarray, true: np.ndarray) -> dict[str, dict[str, float]]:
    """{"pearson": {"r", "p"}, "spearman": ..., "kendall": ...} via llm2loss.evaluation."""
    result = evaluation.correlations(pred, true)
    return {name: {"r": float(result[name][0]), "p": float(result[name][1])} for name in CORRELATIONS}


def validity_row(name: str, diagnoser: LossDiagnoser, X_test: np.ndarray,
                 loss_test: np.ndarray) -> tuple[dict[str, Any], np.ndarray]:
    """Correlations of one loss diagnoser on held-out data, and its member scores (K, n)."""
    members = diagnoser.predict_members(X_test)
    per_member = [correlation_dict(m, loss_test) for m in members]
    summary = {
        corr: {
            "mean": float(np.mean([m[corr]["r"] for m in per_member])),
            "std": float(np.std([m[corr]["r"] for m in per_member])),
            "p_median": float(np.median([m[corr]["p"] for m in per_member])),
        }
        for corr in CORRELATIONS
    }
    row = {
        "diagnoser": name, "objective": diagnoser.objective, "arch": diagnoser.arch,
        "n_members": diagnoser.n_members, "members": summary,
        "ensemble_mean": correlation_dict(members.mean(axis=0), loss_test),
        "ensemble_median": correlation_dict(np.median(members, axis=0), loss_test),
    }
    return row, members
