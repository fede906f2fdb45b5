"""Ask a fitted LossDiagnoser about phrases: estimates, pairwise comparisons, discovery.

Phrase embeddings come from the text side of a language-aligned encoder, so every query here
uses `space="text"` (which matters when the diagnoser was fitted with gap="center").
Uncertainty is the spread over the ensemble members: std and the five quartiles q0..q4 (min, q1,
median, q3, max) of the member outputs, or of the member differences for a pair.

Grounding. Given a `Reference` (held-out samples with their measured loss, `llm2loss.grounding`),
`estimate` adds what the samples a phrase describes measured, and `compare_phrases` adds the
measured gap between the samples each phrase of a pair describes, a `verdict` and its `reason`.
The verdict rule is `llm2loss.verdicts.verdict`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from llm2loss.errors import DataError
from llm2loss.grounding import Reference
from llm2loss.verdicts import Evidence, verdict

if TYPE_CHECKING:  # annotations only: a torch-free query (llm2loss.diagnoser.numpy_scoring) never imports torch
    from llm2loss.diagnoser import LossDiagnoser

__all__ = ["Discovery", "Reference", "compare_phrases", "discover", "estimate"]

QUANTILES = (0.0, 0.25, 0.5, 0.75, 1.0)
Q_COLUMNS = ["q0", "q1", "q2", "q3", "q4"]


def _check_phrases(embeddings: Any, phrases: Sequence[str], what: str) -> list[str]:
    phrases = [str(p) for p in phrases]
    n = len(np.asarray(embeddings)) if np.ndim(embeddings) > 0 else 0
    if len(phrases) == 0:
        raise DataError(f"no {what} given: pass at least one phrase and its embedding")
    if n != len(phrases):
        raise DataError(f"{what}: {n} embeddings but {len(phrases)} phrases; pass one embedding "
                        f"row per phrase, in the same order")
    return phrases


def _member_table(members: np.ndarray) -> pd.DataFrame:
    """mean, std and q0..q4 over the member axis of (K, n) outputs."""
    table = pd.DataFrame({"mean": members.mean(axis=0), "std": members.std(axis=0)})
    quart = np.quantile(members, QUANTILES, axis=0)
    for col, row in zip(Q_COLUMNS, quart):
        table[col] = row
    return table


def estimate(diagnoser: LossDiagnoser, text_embeddings: Any, phrases: Sequence[str], *,
             reference: Reference | None = None) -> pd.DataFrame:
    """One row per phrase: phrase, mean, std, q0..q4 of the members' estimates.

    With a `reference`, also what the k held-out samples nearest to the phrase measured:
    measured_loss with its bootstrap interval measured_low..measured_high, measured_error (or
    NaN), measured_percentile (where that mean loss sits among held-out losses), n_retrieved, and
    `examples` (a list of up to 5 Example dicts: id, preview, loss).
    """
    phrases = _check_phrases(text_embeddings, phrases, "phrases")
    members = diagnoser.predict_members(text_embeddings, space="text")
    table = _member_table(members)
    table.insert(0, "phrase", phrases)
    if reference is not None:
        E = np.asarray(text_embeddings, dtype=np.float32)
        rows = []
        for e in E:
            idx = reference.retrieve(e)
            m = reference.measure(idx)
            rows.append({"measured_loss": m.mean, "measured_low": m.low, "measured_high": m.high,
                         "measured_error": np.nan if m.error is None else m.error,
                         "measured_percentile": m.percentile, "n_retrieved": m.n,
                         "examples": [x.to_dict() for x in reference.examples(idx)]})
        table = pd.concat([table, pd.DataFrame(rows)], axis=1)
    return table


def compare_phrases(diagnoser: LossDiagnoser, emb_a: Any, emb_b: Any,
                    phrases_a: Sequence[str], phrases_b: Sequence[str], *,
                    reference: Reference | None = None,
                    separation: Sequence[float | None] | None = None,
                    familiarity: tuple[Sequence[float], Sequence[float]] | None = None
                    ) -> pd.DataFrame:
    """Phrase a_i against phrase b_i: P(a worse), median difference and q0..q4 of differences.

    `p_a_worse` is the share of members scoring a above b (`Comparison.p_higher`, a tie one
    half, NaN with a single member): for a loss diagnoser a higher score is a higher loss, so it
    reads as P(a worse than b), the name the report, the CLI and the service use. With a `reference`,
    adds the measured gap between the held-out samples that look more like a than like b and
    those that look more like b (`measured_diff`, `measured_low`, `measured_high`, `n_a`,
    `n_b`), `margin_spread` (std of cos(x, a) - cos(x, b) over held-out samples: how much they
    differ in resembling a rather than b), `examples_a` / `examples_b`, and `verdict` ("a worse", "b worse" or "uncertain")
    with its `reason` (None when a verdict is stated), by `llm2loss.verdicts.verdict`.
    `separation` (optional, one per pair): the 0-shot AUROC of the pair on labelled held-out
    data (`Reference.separation_auroc`); `familiarity` (optional): the members' mean P(familiar)
    of each phrase a and each phrase b. Without a reference every verdict is "uncertain": a
    prediction alone is never stated as fact.
    """
    phrases_a = _check_phrases(emb_a, phrases_a, "phrases_a")
    phrases_b = _check_phrases(emb_b, phrases_b, "phrases_b")
    if len(phrases_a) != len(phrases_b):
        raise DataError(f"{len(phrases_a)} phrases_a but {len(phrases_b)} phrases_b; pairs are "
                        f"formed row by row, so pass equally many")
    c = diagnoser.compare(emb_a, emb_b, space="text")
    table = pd.DataFrame({"phrase_a": phrases_a, "phrase_b": phrases_b,
                          "p_a_worse": c.p_higher, "median_diff": c.quartiles[2]})
    for col, row in zip(Q_COLUMNS, c.quartiles):
        table[col] = row
    if reference is None:
        return table
    A, B = np.asarray(emb_a, dtype=np.float32), np.asarray(emb_b, dtype=np.float32)
    rows = []
    for i in range(len(phrases_a)):
        idx_a, idx_b = reference.retrieve_pair(A[i], B[i])
        gap = reference.measure_gap(idx_a, idx_b)
        spread = float(reference.margins(A[i], B[i]).std())
        evidence = Evidence(
            spread=spread,
            same_phrase=phrases_a[i].strip().casefold() == phrases_b[i].strip().casefold(),
            p=float(c.p_higher[i]), median_diff=float(c.quartiles[2, i]),
            differences=c.differences[:, i], gap=gap,
            separation=None if separation is None else separation[i],
            familiarity=None if familiarity is None
            else (float(familiarity[0][i]), float(familiarity[1][i])))
        said, reason = verdict(evidence)
        rows.append({"measured_diff": gap.diff, "measured_low": gap.low,
                     "measured_high": gap.high, "n_a": gap.n_a, "n_b": gap.n_b,
                     "margin_spread": spread, "verdict": said, "reason": reason,
                     "examples_a": [x.to_dict() for x in reference.examples(idx_a, "a")],
                     "examples_b": [x.to_dict() for x in reference.examples(idx_b, "b")]})
    return pd.concat([table, pd.DataFrame(rows)], axis=1)


@dataclass(frozen=True)
class Discovery:
    """What `discover` found in a vocabulary.

    highest_loss: the top_k phrases by estimated loss (estimate() columns), highest first.
    least_familiar: the top_k phrases by lowest familiarity (estimate() columns of the
        familiarity diagnoser), least familiar first; None without a familiarity diagnoser.
    """

    highest_loss: pd.DataFrame
    least_familiar: pd.DataFrame | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form: lists of row dicts."""
        return {"highest_loss": self.highest_loss.to_dict(orient="records"),
                "least_familiar": None if self.least_familiar is None
                else self.least_familiar.to_dict(orient="records")}


def discover(diagnoser: LossDiagnoser, vocabulary_embeddings: Any, phrases: Sequence[str],
             top_k: int = 10, *, familiarity: LossDiagnoser | None = None) -> Discovery:
    """The `top_k` vocabulary phrases with the highest estimated loss (and, given a familiarity
    diagnoser, the `top_k` least familiar ones), each with its member spread."""
    if not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
    losses = estimate(diagnoser, vocabulary_embeddings, phrases)
    highest = losses.sort_values("mean", ascending=False, kind="stable").head(top_k)
    least = None
    if familiarity is not None:
        fam = estimate(familiarity, vocabulary_embeddings, phrases)
        least = fam.sort_values("mean", ascending=True, kind="stable").head(top_k)
        least = least.reset_index(drop=True)
    return Discovery(highest_loss=highest.reset_index(drop=True), least_familiar=least)
