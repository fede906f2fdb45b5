"""Phrase estimates, discovery and phrase-pair comparisons (the paper's Figure 3), grounded.

Per in-domain phrase: the primary loss diagnoser's score with its spread over members, its
percentile among held-out samples (`scale`), P(above the held-out median) and familiarity.
Discovery: the phrases estimated to fail most and the least familiar ones (`insights.discover`).
Per phrase pair (configured or attribute): P(a worse than b) with every member's difference (for
box plots), in scores and percentiles, beside the measured gap and verdict (`grounded`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import expit

from llm2loss import insights
from llm2loss.analysis import grounded
from llm2loss.analysis.phrases import Phrases
from llm2loss.analysis.scale import percentiles, quartiles
from llm2loss.diagnoser import LossDiagnoser

__all__ = ["attach_verdicts", "comparison_rows", "discovery", "estimate_rows", "separations"]


def estimate_rows(diagnoser: LossDiagnoser, quantiles: np.ndarray,
                  familiar: LossDiagnoser | None, phrases: Phrases) -> list[dict[str, Any]]:
    """Per in-domain phrase (`insights.estimate`): score, percentile among held-out samples,
    P(above the held-out median) and familiarity, each with its spread over members."""
    if not phrases.in_domain:
        return []
    E = phrases.matrix(phrases.in_domain)
    table = insights.estimate(diagnoser, E, phrases.in_domain)
    pct = percentiles(diagnoser.predict_members(E, space="text"), quantiles)
    fam = expit(familiar.predict_members(E, space="text")) if familiar is not None else None
    rows = []
    for i, rec in enumerate(table.to_dict(orient="records")):
        rows.append({
            "phrase": rec["phrase"], "source": phrases.source[rec["phrase"]],
            "mean": rec["mean"], "std": rec["std"], "quartiles": [rec[q] for q in insights.Q_COLUMNS],
            "percentile": float(pct[:, i].mean()), "percentile_std": float(pct[:, i].std()),
            "p_above_median": float((pct[:, i] > 50.0).mean() + 0.5 * (pct[:, i] == 50.0).mean()),
            "familiarity": None if fam is None else float(fam[:, i].mean()),
            "familiarity_std": None if fam is None else float(fam[:, i].std()),
            "p_familiar": None if fam is None else float((fam[:, i] > 0.5).mean()),
        })
    return rows


def discovery(diagnoser: LossDiagnoser, familiar: LossDiagnoser | None, phrases: Phrases,
              estimates: list[dict[str, Any]], top_k: int) -> dict[str, Any]:
    """`insights.discover` over the in-domain phrases: highest estimated loss, least familiar."""
    if not phrases.in_domain:
        return {"highest_loss": [], "least_familiar": []}
    found = insights.discover(diagnoser, phrases.matrix(phrases.in_domain), phrases.in_domain,
                              top_k, familiarity=familiar)
    by_phrase = {r["phrase"]: r for r in estimates}
    keep = ("phrase", "source", "mean", "std", "percentile", "percentile_std", "p_above_median",
            "familiarity", "familiarity_std", "p_familiar", "measured", "examples")
    least = [] if found.least_familiar is None else found.least_familiar["phrase"].tolist()
    return {"highest_loss": [{k: by_phrase[p][k] for k in keep}
                             for p in found.highest_loss["phrase"]],
            "least_familiar": [{k: by_phrase[p][k] for k in keep} for p in least]}


# --------------------------------------------------------------------------- Figure 3


def comparison_rows(diagnoser: LossDiagnoser, quantiles: np.ndarray,
                    pairs: list[tuple[str, str, str]], phrases: Phrases,
                    held_out: grounded.Reference,
                    separation: dict[tuple[str, str], float | None]) -> list[dict[str, Any]]:
    """Each (a, b, source) pair: P(a worse than b), the members' differences, and the grounded
    measurement and verdict (`grounded.grounded_comparisons`)."""
    if not pairs:
        return []
    checked = grounded.grounded_comparisons(diagnoser, pairs, phrases.embeddings, held_out,
                                            separation)
    A = phrases.matrix([a for a, _, _ in pairs])
    B = phrases.matrix([b for _, b, _ in pairs])
    comparison = diagnoser.compare(A, B, space="text")
    pct_a = percentiles(diagnoser.predict_members(A, space="text"), quantiles)
    pct_b = percentiles(diagnoser.predict_members(B, space="text"), quantiles)
    rows = []
    for i, (a, b, src) in enumerate(pairs):
        diff_pct = pct_a[:, i] - pct_b[:, i]
        rows.append({
            "a": a, "b": b, "source": src, "p_a_worse": float(comparison.p_higher[i]),
            "mean_difference": float(comparison.differences[:, i].mean()),
            "quartiles": [float(q) for q in comparison.quartiles[:, i]],
            "differences": comparison.differences[:, i].tolist(),
            "percentile_differences": diff_pct.tolist(),
            "percentile_quartiles": quartiles(diff_pct),
            **checked[i],
        })
    return rows


def separations(attributes: dict[str, Any]) -> dict[tuple[str, str], float | None]:
    """(phrase_attr, phrase_not) -> the attribute's 0-shot AUROC, for the comparisons."""
    return {(r["phrase_attr"], r["phrase_not"]): r.get("zero_shot_auroc")
            for r in attributes.get("rows", [])}


def attach_verdicts(attributes: dict[str, Any], comparisons: list[dict[str, Any]]) -> None:
    """Copy each attribute pair's verdict onto its attribute row; add the track record."""
    by_source = {c["source"]: c for c in comparisons}
    for row in attributes.get("rows", []):
        found = by_source.get(f"attribute {row['attribute']}")
        if found is not None:
            row["verdict"], row["reason"] = found["verdict"], found["reason"]
    rows = attributes.get("rows", [])
    if rows:
        attributes["track_record"] = grounded.track_record(rows)
        attributes["validity"] = grounded.validity_correlation(rows)
