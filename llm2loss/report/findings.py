"""Headline findings: what an audit says, in sentences, each with its verdict and its evidence.

Every finding is a `Finding`: a sentence (a `str`, so it prints and joins like one) that also
carries its `verdict`, the `reason` when it is uncertain, a `severity`, and the held-out
`examples` behind it. A phrase finding is stated as a fact only when measurement backs it:
- a comparison ("a fails more than b") uses the verdict of `llm2loss.verdicts` (members agree,
  the measured gap on the held-out samples each phrase describes is significant and points the
  same way, and where labels exist the encoder separates the phrases); otherwise it starts with
  "Uncertain:" and says why;
- a failure phrase ("the model fails on X") is stated when the members agree it is above the
  held-out median (P >= P_STATE) and the held-out samples nearest to it measure a mean loss whose
  90% interval lies above the held-out mean loss.
The headline opens with the audit's own track record on labelled attributes (stated verdicts and
how many were right); "its phrase estimates carry signal" is said only when that record and the
held-out validity support it. Sentences are plain text (no markup); renderers escape them.
"""

from __future__ import annotations

from typing import Any

from llm2loss.analysis.schema import discovery_rows
from llm2loss.regression import is_regression, measured_reasons, predictions
from llm2loss.verdicts import A_WORSE, B_WORSE, P_STATE, UNCERTAIN

UNCERTAIN_LOW = 0.2
UNCERTAIN_HIGH = 0.8
N_PER_KIND = 3
N_EXAMPLES = 5
#: Below this held-out Spearman (or with p above WEAK_P) the phrase estimates come with a caution.
WEAK_SPEARMAN = 0.1
WEAK_P = 0.05
#: "carry signal" needs at least this share of right stated verdicts on labelled attributes.
GOOD_RECORD = 0.9


class Finding(str):
    """A finding's sentence (a str) with its verdict, reason, severity and example samples.

    verdict: "a worse" | "b worse" | "uncertain" for comparisons, "stated" / "uncertain" for
    other phrase findings, None for findings that are facts of the audit (validity, record).
    examples: dicts with id, preview (untrusted text or an image data URI), loss, side.
    """

    verdict: str | None
    reason: str | None
    severity: str | None
    examples: tuple[dict[str, Any], ...]

    def __new__(cls, text: str, *, verdict: str | None = None, reason: str | None = None,
                severity: str | None = None, examples: Any = ()) -> "Finding":
        self = super().__new__(cls, text)
        self.verdict, self.reason, self.severity = verdict, reason, severity
        self.examples = tuple(dict(e) for e in (examples or ()))[: 2 * N_EXAMPLES]
        return self

    @property
    def text(self) -> str:
        """The sentence as a plain str."""
        return str.__str__(self)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"text": self.text, "verdict": self.verdict, "reason": self.reason,
                "severity": self.severity, "examples": list(self.examples)}


def is_uncertain(p: float | None) -> bool:
    """Whether a finding with ensemble agreement `p` must be labelled uncertain."""
    return p is None or UNCERTAIN_LOW <= p <= UNCERTAIN_HIGH


def _n(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _p_value(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.2g}" if value >= 1e-3 else f"{value:.1e}"


def _record(metrics: dict[str, Any]) -> dict[str, Any] | None:
    return (metrics.get("attributes") or {}).get("track_record")


def _record_supports(metrics: dict[str, Any]) -> bool:
    """The audit's own verdicts on labelled attributes were mostly right (or none were wrong)."""
    record = _record(metrics)
    if not record or not record.get("stated"):
        return False
    return record["right"] / record["stated"] >= GOOD_RECORD


def _validity(metrics: dict[str, Any]) -> list[Finding]:
    name = (metrics.get("primary") or {}).get("loss")
    row = next((r for r in metrics.get("validity", []) if r["diagnoser"] == name), None)
    if row is None:
        return [Finding("No loss diagnoser was fitted, so no phrase can be given an estimated "
                        "loss.")]
    r, p = row["ensemble_mean"]["spearman"]["r"], row["ensemble_mean"]["spearman"]["p"]
    if r is None or r < WEAK_SPEARMAN or p is None or p > WEAK_P:
        return [Finding(f"Caution: the {name} diagnoser orders held-out samples by loss only "
                        f"weakly (Spearman {_n(r)}, p = {_p_value(p)}), so treat the phrase "
                        "estimates below as unreliable.", severity="high")]
    sentence = (f"The {name} diagnoser orders held-out samples by loss with Spearman {_n(r)} "
                f"(p = {_p_value(p)})")
    if _record_supports(metrics):
        return [Finding(sentence + ", and its phrase verdicts on labelled attributes were right "
                        "(below), so its phrase estimates carry signal.")]
    return [Finding(sentence + "; that is about samples, not phrases: a phrase estimate is stated "
                    "below only where the held-out samples it describes back it.")]


def _track_record(metrics: dict[str, Any]) -> list[Finding]:
    record = _record(metrics)
    if not record:
        return []
    n, sig, stated, right = (record["attributes"], record["significant"], record["stated"],
                             record["right"])
    text = (f"Of {n} attributes measured here, {sig} have a significant measured loss disparity; "
            f"{stated} phrase verdicts were stated on them and {right} were right.")
    if sig and not stated:
        text += (" No verdict was stated: the encoder does not separate these attributes' phrases "
                 "well enough, or prediction and measurement disagree (see Attributes).")
    return [Finding(text, severity="high" if stated and right < stated else None)]


def _examples(row: dict[str, Any], *keys: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for key in keys:
        out += list(row.get(key) or [])[:N_EXAMPLES]
    return out


def _measured_phrase(row: dict[str, Any]) -> str:
    m = row.get("measured")
    if not m:
        return ""
    return (f"; the {m['n']} held-out samples nearest to it measure a mean loss of "
            f"{_n(m['loss'], 3)} (90% interval [{_n(m['low'], 3)}, {_n(m['high'], 3)}]), at "
            f"percentile {_n(m['percentile'], 0)} of held-out losses")


def _failures(metrics: dict[str, Any]) -> list[Finding]:
    out = []
    mean_loss = (metrics.get("data") or {}).get("test_loss_mean")
    for row in discovery_rows(metrics, "highest_loss")[:N_PER_KIND]:
        p = row["p_above_median"]
        where = (f"at percentile {_n(row['percentile'], 0)} of held-out samples "
                 f"(± {_n(row['percentile_std'], 0)} points across members; P(above the median "
                 f"sample) = {_n(p)}){_measured_phrase(row)}")
        m = row.get("measured")
        examples = _examples(row, "examples")
        if p is not None and p < 1.0 - P_STATE:
            out.append(Finding(
                f"Even the highest-ranked phrase '{row['phrase']}' is estimated below the median "
                f"held-out sample ({where}): no in-domain phrase stands out as a failure.",
                verdict="stated", examples=examples))
            break
        backed = (m is not None and mean_loss is not None and m["low"] is not None
                  and m["low"] > mean_loss)
        if p is not None and p >= P_STATE and backed:
            out.append(Finding(f"The model fails more than usual on '{row['phrase']}': {where}, "
                               f"above the held-out mean loss {_n(mean_loss, 3)}.",
                               verdict="stated", severity="medium", examples=examples))
            continue
        reason = ("the members disagree" if p is None or p < P_STATE else
                  "no held-out samples were measured" if m is None else
                  "the held-out samples nearest to it do not measure above the held-out mean "
                  f"loss {_n(mean_loss, 3)}")
        out.append(Finding(f"Uncertain: '{row['phrase']}' is estimated {where}; not stated because "
                           f"{reason}.", verdict=UNCERTAIN, reason=reason, examples=examples))
    return out


def _spread(row: dict[str, Any], sign: float) -> str:
    """Median and quartiles of the members' differences, worse minus better (sign flips a-b)."""
    q = sorted(sign * v for v in row["quartiles"][1:4])
    pct = sign * row["percentile_quartiles"][2]
    return (f"member score differences worse minus better: median {_n(q[1])}, quartiles "
            f"[{_n(q[0])}, {_n(q[2])}]; median {_n(pct, 1)} percentile points")


def _measured_gap(row: dict[str, Any], sign: float) -> str:
    if row.get("measured_diff") is None:
        return ""
    low, high = sorted((sign * row["measured_low"], sign * row["measured_high"]))
    return (f"; measured on held-out samples, worse minus better {sign * row['measured_diff']:+.3f} "
            f"(90% interval [{low:+.3f}, {high:+.3f}], {row['n_a']} vs {row['n_b']} samples)")


def _checked_verdict(row: dict[str, Any]) -> tuple[str, str | None]:
    """The row's verdict, demoted to uncertain when its own P or measured gap do not back it
    (metrics.json is read back from a store others can write to)."""
    said, reason = row.get("verdict", UNCERTAIN), row.get("reason")
    if said not in (A_WORSE, B_WORSE):
        return UNCERTAIN, reason
    p, diff = row.get("p_a_worse"), row.get("measured_diff")
    a_worse = said == A_WORSE
    if p is None or (p < P_STATE if a_worse else p > 1.0 - P_STATE):
        return UNCERTAIN, f"the members disagree (P(a worse) = {_n(p)})"
    if diff is None or (diff <= 0 if a_worse else diff >= 0):
        return UNCERTAIN, "the measured gap does not point the same way"
    return said, None


def _comparison(row: dict[str, Any]) -> Finding:
    p = row["p_a_worse"]
    said, reason = _checked_verdict(row)
    examples = _examples(row, "examples_a", "examples_b")
    if said == A_WORSE:
        return Finding(f"'{row['a']}' fails more than '{row['b']}': predicted (P = {_n(p)}; "
                       f"{_spread(row, 1.0)}){_measured_gap(row, 1.0)}.", verdict=said,
                       severity="medium", examples=examples)
    if said == B_WORSE:
        return Finding(f"'{row['b']}' fails more than '{row['a']}': predicted "
                       f"(P = {_n(None if p is None else 1.0 - p)}; {_spread(row, -1.0)})"
                       f"{_measured_gap(row, -1.0)}.", verdict=said, severity="medium",
                       examples=examples)
    reason = reason or "no measurement backs the prediction"
    parts = [] if "P(a worse" in reason else [f"P(a worse than b) = {_n(p)}"]
    if "measure" not in reason:  # the reason may already state the measured gap
        parts.append(_measured_gap(row, 1.0).removeprefix("; "))
    evidence = "; ".join(x for x in parts if x)
    return Finding(f"Uncertain whether '{row['a']}' fails more than '{row['b']}': {reason}"
                   + (f" ({evidence})." if evidence else "."),
                   verdict=UNCERTAIN, reason=reason, examples=examples)


def _disparities(metrics: dict[str, Any]) -> list[Finding]:
    rows = sorted(metrics.get("comparisons", {}).get("rows", []),
                  key=lambda r: (r.get("verdict", UNCERTAIN) == UNCERTAIN,
                                 -abs(r["percentile_quartiles"][2])))
    return [_comparison(row) for row in rows[:N_PER_KIND]]


def _unfamiliar(metrics: dict[str, Any]) -> list[str]:
    rows = discovery_rows(metrics, "least_familiar")[:N_PER_KIND]
    if not rows:
        return []
    listed = ", ".join(f"'{r['phrase']}' (familiarity {_n(r['familiarity'])} ± "
                       f"{_n(r['familiarity_std'])})" for r in rows)
    return [Finding(f"The least familiar in-domain concepts, whose estimates are least "
                    f"trustworthy: {listed}.")]


def _familiarity_auroc(metrics: dict[str, Any]) -> list[str]:
    fam = metrics.get("familiarity", {}) or {}
    name = fam.get("diagnoser")
    rows = [r for r in fam.get("auroc", []) if r["diagnoser"] == name]
    if not rows:
        return []
    listed = ", ".join(f"{r['out_of_domain']} {_n(r['auroc'])}" for r in rows)
    return [Finding(f"Familiarity ({name}) tells in-domain phrases from out-of-domain ones with "
                    f"AUROC {listed} (0.5 = no better than chance).")]


def _attributes(metrics: dict[str, Any]) -> list[Finding]:
    att = metrics.get("attributes", {}) or {}
    rows = att.get("rows", [])
    name = (metrics.get("primary") or {}).get("loss")
    if not rows or name is None:
        return []
    metric = "error" if rows[0]["measured"].get("error") is not None else "loss"
    top = max(rows, key=lambda r: r["measured"][metric]["absolute"])
    signed = top["measured"][metric]["signed"]
    side = "with" if signed > 0 else "without"
    label = "error rate" if metric == "error" else "mean loss"
    sentence = (f"Measured on held-out data, the largest {label} gap is for attribute "
                f"'{top['attribute']}': samples {side} it are worse by {_n(abs(signed), 3)}.")
    auroc = top.get("zero_shot_auroc")
    if auroc is not None:
        sentence += (f" The encoder tells these samples apart from the phrases with 0-shot "
                     f"AUROC {_n(auroc)} (0.5 = not at all).")
    said = top.get("verdict")
    if said in (A_WORSE, B_WORSE):
        right = (said == A_WORSE) == (top["measured"]["loss"]["signed"] > 0)
        sentence += (f" The phrase verdict ({'attribute' if said == A_WORSE else 'its absence'} "
                     f"worse) is {'right' if right else 'wrong'} by the measured loss.")
    elif said == UNCERTAIN:
        sentence += f" The phrases alone cannot tell: {top.get('reason')}."
    agreement = next((a for a in att.get("agreement", [])
                      if a["diagnoser"] == name and a["metric"] == metric and "kendall" in a), None)
    if agreement is not None:
        sentence += (f" Across {agreement['n']} attributes, predicted and measured disparities "
                     f"agree with Kendall {_n(agreement['kendall']['r'])} and sign accuracy "
                     f"{_n(agreement['sign_accuracy'])}.")
    return [Finding(sentence)]


def headline_findings(metrics: dict[str, Any]) -> list[Finding]:
    """The audit's findings as sentences, most important first, each with its uncertainty."""
    return [*_validity(metrics), *_track_record(metrics), *_disparities(metrics),
            *_failures(metrics), *_unfamiliar(metrics), *_attributes(metrics),
            *_familiarity_auroc(metrics)]


def _overall_changes(regression: dict[str, Any]) -> list[Finding]:
    """Held-out error rate and mean loss, previous -> current, with the ratio and a severity."""
    out = []
    labels = {"test_error_rate": "held-out error rate", "test_loss_mean": "held-out mean loss"}
    for key, label in labels.items():
        entry = (regression.get("overall") or {}).get(key) or {}
        before, after = entry.get("previous"), entry.get("current")
        if before is None or after is None:
            continue
        ratio = f" (x{after / before:.1f})" if before > 0 else ""
        worse = after > before
        severity = ("high" if before > 0 and after / before >= 2 else "medium") if worse else None
        verb = "rose" if worse else "fell" if after < before else "stayed"
        out.append(Finding(f"The {label} {verb} from {before:.3f} to {after:.3f}{ratio}.",
                           severity=severity))
    return out


def regression_findings(regression: dict[str, Any]) -> list[Finding]:
    """The regression report between two versions as sentences: overall change first, then the
    phrases whose estimate rose or fell, measured attribute changes, and the rule's verdict."""
    out = _overall_changes(regression)
    if regression.get("reason"):
        out.append(Finding(f"No phrase comparison between versions: {regression['reason']}."))
    method_changed = bool(regression.get("readout_note"))
    if method_changed:
        out.append(Finding(f"Uncertain: {regression['readout_note']}.", verdict=UNCERTAIN,
                           severity="medium"))
    for key, verb in (("phrases_rose", "rose"), ("phrases_fell", "fell")):
        for row in regression.get(key, [])[:N_PER_KIND]:
            p = row["p_rose"] if verb == "rose" else 1.0 - row["p_rose"]
            # an estimate of the diagnosers, however much they agree: never "stated" (measured)
            prefix = "Uncertain: " if is_uncertain(p) or method_changed else ""
            out.append(Finding(
                f"{prefix}{'t' if prefix else 'T'}he estimated loss of '{row['phrase']}' {verb} "
                f"from percentile {_n(row['previous'], 0)} to {_n(row['current'], 0)} (median "
                f"change {_n(row['change'], 1)} points, P({verb}) = {_n(p)}; a prediction of the "
                f"diagnosers, not measured).",
                verdict=UNCERTAIN if prefix else None))
    for row in regression.get("attributes_measured", [])[:N_PER_KIND]:
        out.append(Finding(f"Measured {row['metric']} disparity of '{row['attribute']}' went from "
                           f"{row['previous']:+.3f} to {row['current']:+.3f}."))
    predicted = predictions(regression)
    if predicted:  # estimated rises: predictions of the diagnosers, never a regression by themselves
        out.append(Finding("Uncertain: predicted, not measured: " + "; ".join(predicted) + ".",
                           verdict=UNCERTAIN, severity="medium"))
    if is_regression(regression):
        reasons = measured_reasons(regression)
        out.append(Finding("Significant regression (measured): " + "; ".join(reasons) + ".",
                           severity="high"))
    else:
        out.append(Finding("No significant regression by the rule: "
                           + str(regression.get("rule", "")) + "."))
    return out
