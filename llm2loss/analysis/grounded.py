"""Grounded findings of one audit: phrase estimates and comparisons checked against held-out truth.

`analyse` (the package's entry point) predicts; this module measures. Given the audit's
`Reference` (its held-out samples with their measured loss), it adds to every phrase estimate
what the samples the phrase describes measured, turns every phrase pair into a comparison with a
verdict (`llm2loss.verdicts`), computes each labelled attribute's 0-shot AUROC (the paper's
Table 5: can the encoder tell these samples apart at all?) and its correlation with the measured
disparity (Table 4), and keeps the audit's own track record: of the attributes whose measured
disparity is significant, how many verdicts were stated and how many were right.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import kendalltau

from llm2loss import insights
from llm2loss.diagnoser import LossDiagnoser
from llm2loss.grounding import Reference, labelled_gap
from llm2loss.verdicts import A_WORSE, B_WORSE

__all__ = ["attribute_truth", "build_reference", "ground_estimates", "grounded_comparisons",
           "track_record", "validity_correlation"]


def build_reference(X_test: np.ndarray, loss_test: np.ndarray, correct_test: np.ndarray | None,
                    ids_test: list[str] | None, previews_test: list[str] | None,
                    diagnoser: LossDiagnoser | None, gap: str) -> Reference:
    """The audit's held-out truth; with gap="center" retrieval centres as the diagnoser does."""
    centred = gap == "center" and diagnoser is not None
    return Reference(X_test, loss_test,
                     error=None if correct_test is None else 1.0 - np.asarray(correct_test),
                     ids=ids_test, previews=previews_test,
                     data_mean=diagnoser.data_mean_ if centred else None,
                     text_mean=diagnoser.text_mean_ if centred else None)


def ground_estimates(rows: list[dict[str, Any]], embeddings: dict[str, np.ndarray],
                     reference: Reference) -> None:
    """Add `measured` (loss, interval, error, percentile, n) and `examples` to estimate rows."""
    for row in rows:
        idx = reference.retrieve(embeddings[row["phrase"]])
        m = reference.measure(idx)
        row["measured"] = {"loss": m.mean, "low": m.low, "high": m.high, "error": m.error,
                           "percentile": m.percentile, "n": m.n}
        row["examples"] = [x.to_dict() for x in reference.examples(idx)]


def grounded_comparisons(diagnoser: LossDiagnoser, pairs: list[tuple[str, str, str]],
                         embeddings: dict[str, np.ndarray], reference: Reference,
                         separation: dict[tuple[str, str], float | None]) -> list[dict[str, Any]]:
    """Per (a, b, source) pair: measured gap, verdict, reason and examples (insights)."""
    if not pairs:
        return []
    A = np.stack([embeddings[a] for a, _, _ in pairs])
    B = np.stack([embeddings[b] for _, b, _ in pairs])
    table = insights.compare_phrases(
        diagnoser, A, B, [a for a, _, _ in pairs], [b for _, b, _ in pairs], reference=reference,
        separation=[separation.get((a, b)) for a, b, _ in pairs])
    keep = ("measured_diff", "measured_low", "measured_high", "n_a", "n_b", "verdict", "reason",
            "examples_a", "examples_b")
    return [{k: rec[k] for k in keep} for rec in table.to_dict(orient="records")]


def attribute_truth(mask: np.ndarray, loss_test: np.ndarray, reference: Reference,
                    embedding_attr: np.ndarray, embedding_not: np.ndarray) -> dict[str, Any]:
    """An attribute's measured disparity with its interval and its pair's 0-shot AUROC."""
    gap = labelled_gap(loss_test, mask)
    return {"zero_shot_auroc": reference.separation_auroc(embedding_attr, embedding_not, mask),
            "measured_interval": [gap.low, gap.high], "significant": gap.significant}


def validity_correlation(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Table 4: Kendall tau between the attributes' 0-shot AUROC and |measured disparity|."""
    pairs = [(r["zero_shot_auroc"], abs(r["measured"]["loss"]["signed"])) for r in rows
             if r.get("zero_shot_auroc") is not None]
    if len(pairs) < 3:
        return {"n": len(pairs), "reason": "fewer than 3 attributes with a 0-shot AUROC"}
    tau, p = kendalltau(*np.asarray(pairs, dtype=float).T)
    return {"n": len(pairs), "kendall": {"r": float(tau), "p": float(p)}}


def track_record(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Of the attributes with a significant measured disparity: stated verdicts and right ones.

    A verdict is right when its direction ("a worse" = the attribute's samples are worse) matches
    the sign of the measured loss disparity.
    """
    significant = [r for r in rows if r.get("significant")]
    stated = [r for r in significant if r.get("verdict") in (A_WORSE, B_WORSE)]
    right = [r for r in stated
             if (r["verdict"] == A_WORSE) == (r["measured"]["loss"]["signed"] > 0)]
    return {"attributes": len(rows), "significant": len(significant), "stated": len(stated),
            "right": len(right),
            "rule": "verdicts on attributes whose measured loss disparity is significant (bootstrap "
                    "90% interval excludes 0); right = same direction as the measured disparity"}

