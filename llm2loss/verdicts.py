"""The verdict rule: when a comparison of two phrases may be stated as a fact.

A comparison "is the model worse on a than on b?" has three kinds of evidence:
- prediction: the diagnoser members' differences h(a) - h(b) and P(a worse), the fraction of
  members that put a above b (ties one half);
- measurement: the measured loss gap between the held-out samples that look more like a than
  like b and those that look more like b (`llm2loss.grounding.Reference.retrieve_pair`), with a
  bootstrap interval;
- validity: where attribute labels exist, the 0-shot AUROC of the pair (can the encoder tell
  these samples apart at all?), and optionally how familiar each phrase is to the audited data.

The rule (`verdict`) states "a worse" or "b worse" only when all of them agree:
1. there are at least two members and the phrases differ;
2. the members agree: P(a worse) >= P_STATE or <= 1 - P_STATE;
3. the measured gap's interval excludes zero (it is not within noise);
4. the measured gap and the prediction point the same way;
5. the measured gap is at least MIN_RELATIVE_GAP of the retrieved samples' mean loss, so a
   gap that is significant only because the retrieved sets are large is not stated;
6. where a 0-shot AUROC is known it is at least MIN_SEPARATION: below that the encoder barely
   separates the phrases, so neither the prediction nor the retrieval is about the attribute;
   where none is known (no labels for the pair), the held-out samples must differ clearly in how
   much they resemble a rather than b: the spread (std) of cos(x, a) - cos(x, b) over held-out
   samples is at least MIN_SPREAD. Where short phrases barely separate whole documents (real
   e-mail), that spread is small and the retrieved samples can point the same wrong way as the
   prediction, so agreeing with the measurement proves nothing; where the encoder separates the
   phrases well (the planted slices), the spread is clearly larger;
7. where familiarity is known, both phrases are familiar (P(familiar) >= MIN_FAMILIARITY).
Otherwise the verdict is "uncertain" and the reason names the first check that failed.
The thresholds were chosen on benchmarks/bench_trust.py (SpamAssassin v1/v2 attributes, planted
slices over several seeds, and a second corpus) so that a stated verdict is rarely confidently
wrong; the measured spreads, AUROCs and rates are in `## Trust` of benchmarks/RESULTS.md (the
threshold sweep and the real-corpus pairs one by one), where a rerun updates them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from llm2loss.grounding import MeasuredGap

A_WORSE, B_WORSE, UNCERTAIN = "a worse", "b worse", "uncertain"
VERDICTS = (A_WORSE, B_WORSE, UNCERTAIN)
P_STATE = 0.9
MIN_SEPARATION = 0.7
MIN_FAMILIARITY = 0.5
MIN_RELATIVE_GAP = 0.0
MIN_SPREAD = 0.1


@dataclass(frozen=True)
class Evidence:
    """What is known about one comparison of phrase a with phrase b (see the module doc).

    p: P(a worse) over the members (NaN with one member); median_diff: median member difference;
    differences: every member's h(a) - h(b); gap: the measured gap of the retrieved samples (None
    without a reference); separation: 0-shot AUROC or None; familiarity: (P(familiar) of a, of b)
    or None; same_phrase: the two phrases are the same text; spread: std over held-out samples
    of cos(x, a) - cos(x, b), or None.
    """

    p: float
    median_diff: float
    differences: np.ndarray
    gap: MeasuredGap | None
    separation: float | None = None
    familiarity: tuple[float, float] | None = None
    same_phrase: bool = False
    mean_loss: float | None = None
    spread: float | None = None


def _fmt(value: float) -> str:
    return f"{value:+.3g}"


def verdict(e: Evidence) -> tuple[str, str | None]:
    """("a worse" | "b worse" | "uncertain", reason or None) by the rule of the module doc."""
    diffs = np.asarray(e.differences, dtype=np.float64)
    if e.same_phrase or (diffs.size and np.all(diffs == 0.0)):
        return UNCERTAIN, "the two phrases are the same or get the same estimate from every member"
    if diffs.size < 2 or e.p is None or math.isnan(e.p):
        return UNCERTAIN, ("one ensemble member: there is no spread to tell agreement from "
                           "chance; fit with n_members >= 2")
    if e.p < P_STATE and 1.0 - e.p < P_STATE:  # not 1 - P_STATE < p: 1 - 0.8 is 0.1999...
        return UNCERTAIN, f"the members disagree (P(a worse) = {e.p:.2f})"
    if e.gap is None:
        return UNCERTAIN, ("no held-out samples to check the prediction against (no reference); "
                           "only a measured gap can back a verdict")
    if not e.gap.significant:
        return UNCERTAIN, (f"the measured gap on the held-out samples each phrase describes is "
                           f"within noise ({_fmt(e.gap.diff)}, 90% interval "
                           f"[{_fmt(e.gap.low)}, {_fmt(e.gap.high)}])")
    predicted_a_worse = e.p >= P_STATE
    if (e.gap.diff > 0) != predicted_a_worse:
        return UNCERTAIN, (f"prediction and measurement disagree: the members put "
                           f"{'a' if predicted_a_worse else 'b'} worse (P(a worse) = {e.p:.2f}) "
                           f"but the retrieved samples measure a - b = {_fmt(e.gap.diff)}")
    if (e.mean_loss is not None and MIN_RELATIVE_GAP > 0
            and abs(e.gap.diff) < MIN_RELATIVE_GAP * abs(e.mean_loss)):
        return UNCERTAIN, (f"the measured gap {_fmt(e.gap.diff)} is small next to the mean loss "
                           f"{e.mean_loss:.3g}")
    if e.separation is not None and e.separation < MIN_SEPARATION:
        return UNCERTAIN, (f"the encoder does not separate the phrases: 0-shot AUROC "
                           f"{e.separation:.2f} < {MIN_SEPARATION:.2f} on labelled held-out data")
    if e.separation is None and e.spread is not None and e.spread < MIN_SPREAD:
        return UNCERTAIN, (f"no labels show that the encoder separates these phrases, and the "
                           f"held-out samples barely differ in how much they resemble a rather "
                           f"than b (spread {e.spread:.3f} < {MIN_SPREAD:.2f}); check the examples")
    if e.familiarity is not None and min(e.familiarity) < MIN_FAMILIARITY:
        which = "a" if e.familiarity[0] <= e.familiarity[1] else "b"
        return UNCERTAIN, (f"phrase {which} is unfamiliar to the audited data "
                           f"(P(familiar) = {min(e.familiarity):.2f})")
    return (A_WORSE if predicted_a_worse else B_WORSE), None
