"""The paper's Tables 3-5: per labelled attribute, measured disparity beside predicted disparity.

Per attribute column (bool, 0/1 or -1/1, one value per held-out sample) with a phrase pair
("attr", "not attr"): the disparity of the loss, and of the error rate when correctness is known,
measured on the held-out data, beside the disparity each loss diagnoser predicts from the phrase
pair (signed and absolute, with P(attr worse)); the measured side's interval and the pair's 0-shot
AUROC come from `grounded.attribute_truth`. Agreement: per diagnoser and measured metric, the
correlations and sign accuracy across attributes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from llm2loss import evaluation
from llm2loss.analysis import grounded
from llm2loss.analysis.phrases import Phrases
from llm2loss.analysis.validity import CORRELATIONS
from llm2loss.diagnoser import LossDiagnoser

__all__ = ["attribute_metrics"]


def _bool_mask(column: pd.Series) -> np.ndarray | None:
    """The column as a boolean mask, or None when it is not a two-valued attribute."""
    values = column.dropna()
    if len(values) != len(column):
        return None
    if values.dtype == bool:
        return values.to_numpy()
    unique = set(values.unique().tolist())
    if unique <= {0, 1}:
        return values.to_numpy().astype(bool)
    if unique <= {-1, 1}:  # CelebA writes attributes as -1 / 1
        return values.to_numpy() == 1
    return None


def _disparity(values: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """{"signed", "absolute"} of metric(attr) - metric(not attr) via llm2loss.evaluation."""
    result = evaluation.attribute_disparity(values, mask)
    return {"signed": float(result["signed"]), "absolute": float(result["absolute"])}


def attribute_metrics(attributes_test: pd.DataFrame | None,
                      attribute_phrases: dict[str, tuple[str, str]], loss_test: np.ndarray,
                      correct_test: np.ndarray | None, loss_diagnosers: dict[str, LossDiagnoser],
                      phrases: Phrases, held_out: grounded.Reference) -> dict[str, Any]:
    """Measured vs predicted disparity per attribute, and their agreement per diagnoser/metric."""
    if attributes_test is None or not len(attributes_test.columns):
        return {"available": False, "reason": "the dataset has no attribute columns"}
    rows, skipped = [], []
    for column in attributes_test.columns:
        mask = _bool_mask(attributes_test[column])
        reason = None
        if column not in attribute_phrases:
            reason = "no phrase pair; set dataset.attribute_phrases for it"
        elif mask is None:
            reason = "not a two-valued (bool, 0/1 or -1/1) column without missing values"
        elif mask.all() or not mask.any():
            reason = "only one group is present in the held-out data"
        if reason is not None:
            skipped.append({"attribute": str(column), "reason": reason})
            continue
        yes, no = attribute_phrases[column]
        row = _attribute_row(str(column), mask, yes, no, loss_test, correct_test,
                             loss_diagnosers, phrases)
        row.update(grounded.attribute_truth(mask, loss_test, held_out, phrases.embeddings[yes],
                                            phrases.embeddings[no]))
        rows.append(row)
    return {"available": bool(rows), "reason": None if rows else "no usable attribute column",
            "rows": rows, "skipped": skipped,
            "agreement": _agreement(rows, list(loss_diagnosers), correct_test is not None)}


def _attribute_row(column: str, mask: np.ndarray, yes: str, no: str, loss_test: np.ndarray,
                   correct_test: np.ndarray | None, loss_diagnosers: dict[str, LossDiagnoser],
                   phrases: Phrases) -> dict[str, Any]:
    measured = {"loss": _disparity(loss_test, mask),
                "error": None if correct_test is None else _disparity(1.0 - correct_test, mask)}
    pair = np.stack([phrases.embeddings[yes], phrases.embeddings[no]])
    predicted = {}
    for name, diagnoser in loss_diagnosers.items():
        comparison = diagnoser.compare(pair[:1], pair[1:], space="text")
        scores = diagnoser.predict(pair, space="text")
        predicted[name] = {**_disparity(scores, np.array([True, False])),
                           "p_attr_worse": float(comparison.p_higher[0])}
    return {"attribute": column, "phrase_attr": yes, "phrase_not": no,
            "n_attr": int(mask.sum()), "n_not": int((~mask).sum()),
            "measured": measured, "predicted": predicted}


def _agreement(rows: list[dict[str, Any]], names: list[str], has_error: bool) -> list[dict[str, Any]]:
    """Per loss diagnoser and measured metric: correlations and sign accuracy across attributes."""
    out = []
    for metric in ("loss", "error") if has_error else ("loss",):
        true = np.array([r["measured"][metric]["signed"] for r in rows], dtype=float)
        for name in names:
            pred = np.array([r["predicted"][name]["signed"] for r in rows], dtype=float)
            entry: dict[str, Any] = {"diagnoser": name, "metric": metric, "n": len(rows)}
            if len(rows) < 3:
                entry["reason"] = "fewer than 3 attributes: correlations are not defined"
            else:
                result = evaluation.disparity_agreement(true, pred)
                for corr in CORRELATIONS:
                    entry[corr] = {"r": float(result[corr][0]), "p": float(result[corr][1])}
                entry["sign_accuracy"] = float(result["sign_accuracy"])
            out.append(entry)
    return out

