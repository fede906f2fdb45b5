"""Headline findings: what an audit says, in sentences, each with its uncertainty.

A finding that rests on the ensemble's agreement carries P, the fraction of members that agree.
When P lies between `UNCERTAIN_LOW` and `UNCERTAIN_HIGH` the members disagree, and the sentence
starts with "Uncertain:" instead of stating the finding as fact. Sentences are plain text (no
markup); renderers escape them.
"""

from __future__ import annotations

from typing import Any

UNCERTAIN_LOW = 0.2
UNCERTAIN_HIGH = 0.8
N_PER_KIND = 3
#: Below this held-out Spearman (or with p above WEAK_P) the phrase estimates come with a caution.
WEAK_SPEARMAN = 0.1
WEAK_P = 0.05


def is_uncertain(p: float | None) -> bool:
    """Whether a finding with ensemble agreement `p` must be labelled uncertain."""
    return p is None or UNCERTAIN_LOW <= p <= UNCERTAIN_HIGH


def _n(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _p_value(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.2g}" if value >= 1e-3 else f"{value:.1e}"


def _validity(metrics: dict[str, Any]) -> list[str]:
    name = (metrics.get("primary") or {}).get("loss")
    row = next((r for r in metrics.get("validity", []) if r["diagnoser"] == name), None)
    if row is None:
        return ["No loss diagnoser was fitted, so no phrase can be given an estimated loss."]
    r, p = row["ensemble_mean"]["spearman"]["r"], row["ensemble_mean"]["spearman"]["p"]
    if r is None or r < WEAK_SPEARMAN or p is None or p > WEAK_P:
        return [f"Caution: the {name} diagnoser orders held-out samples by loss only weakly "
                f"(Spearman {_n(r)}, p = {_p_value(p)}), so treat the phrase estimates below as "
                "unreliable."]
    return [f"The {name} diagnoser orders held-out samples by loss with Spearman {_n(r)} "
            f"(p = {_p_value(p)}), so its phrase estimates carry signal."]


def _failures(metrics: dict[str, Any]) -> list[str]:
    out = []
    for row in metrics.get("discovery", {}).get("top_failures", [])[:N_PER_KIND]:
        p = row["p_above_median"]
        where = (f"at percentile {_n(row['percentile'], 0)} of held-out samples "
                 f"(± {_n(row['percentile_std'], 0)} points across members; P(above the median "
                 f"sample) = {_n(p)})")
        if is_uncertain(p):
            out.append(f"Uncertain: the members disagree whether the model fails more than usual on "
                       f"'{row['phrase']}', {where}.")
        elif p > UNCERTAIN_HIGH:
            out.append(f"The model is estimated to fail on '{row['phrase']}': {where}.")
        else:
            out.append(f"Even the highest-ranked phrase '{row['phrase']}' is estimated below the "
                       f"median held-out sample ({where}): no in-domain phrase stands out as a "
                       "failure.")
            break
    return out


def _spread(row: dict[str, Any], sign: float) -> str:
    """Median and quartiles of the members' differences, worse minus better (sign flips a-b)."""
    q = sorted(sign * v for v in row["quartiles"][1:4])
    pct = sign * row["percentile_quartiles"][2]
    return (f"member score differences worse minus better: median {_n(q[1])}, quartiles "
            f"[{_n(q[0])}, {_n(q[2])}]; median {_n(pct, 1)} percentile points")


def _disparities(metrics: dict[str, Any]) -> list[str]:
    rows = sorted(metrics.get("comparisons", {}).get("rows", []),
                  key=lambda r: -abs(r["percentile_quartiles"][2]))
    out = []
    for row in rows[:N_PER_KIND]:
        p = row["p_a_worse"]
        if is_uncertain(p):
            out.append(f"Uncertain: the members disagree whether '{row['a']}' fails more than "
                       f"'{row['b']}' (P(a worse than b) = {_n(p)}; {_spread(row, 1.0)}).")
        elif p > 0.5:
            out.append(f"'{row['a']}' is estimated to fail more than '{row['b']}' "
                       f"(P = {_n(p)}; {_spread(row, 1.0)}).")
        else:
            out.append(f"'{row['b']}' is estimated to fail more than '{row['a']}' "
                       f"(P = {_n(1.0 - p)}; {_spread(row, -1.0)}).")
    return out


def _unfamiliar(metrics: dict[str, Any]) -> list[str]:
    rows = metrics.get("discovery", {}).get("least_familiar", [])[:N_PER_KIND]
    if not rows:
        return []
    listed = ", ".join(f"'{r['phrase']}' (familiarity {_n(r['familiarity'])} ± "
                       f"{_n(r['familiarity_std'])})" for r in rows)
    return [f"The least familiar in-domain concepts, whose estimates are least trustworthy: "
            f"{listed}."]


def _familiarity_auroc(metrics: dict[str, Any]) -> list[str]:
    fam = metrics.get("familiarity", {}) or {}
    name = fam.get("diagnoser")
    rows = [r for r in fam.get("auroc", []) if r["diagnoser"] == name]
    if not rows:
        return []
    listed = ", ".join(f"{r['out_of_domain']} {_n(r['auroc'])}" for r in rows)
    return [f"Familiarity ({name}) tells in-domain phrases from out-of-domain ones with AUROC "
            f"{listed} (0.5 = no better than chance)."]


def _attributes(metrics: dict[str, Any]) -> list[str]:
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
    pred = top["predicted"].get(name)
    if pred is not None:
        p = pred["p_attr_worse"]
        agrees = (pred["signed"] > 0) == (signed > 0)
        verdict = "agrees" if agrees else "disagrees"
        prefix = "Uncertain: " if is_uncertain(p) else ""
        sentence += (f" {prefix}From the phrases alone, {name} {verdict} "
                     f"(P(attr worse) = {_n(p)}).")
    agreement = next((a for a in att.get("agreement", [])
                      if a["diagnoser"] == name and a["metric"] == metric and "kendall" in a), None)
    if agreement is not None:
        sentence += (f" Across {agreement['n']} attributes, predicted and measured disparities "
                     f"agree with Kendall {_n(agreement['kendall']['r'])} and sign accuracy "
                     f"{_n(agreement['sign_accuracy'])}.")
    return [sentence]


def headline_findings(metrics: dict[str, Any]) -> list[str]:
    """The audit's findings as sentences, most important first, each with its uncertainty."""
    return [*_validity(metrics), *_failures(metrics), *_disparities(metrics),
            *_unfamiliar(metrics), *_attributes(metrics), *_familiarity_auroc(metrics)]


def regression_findings(regression: dict[str, Any]) -> list[str]:
    """The regression report between two versions as sentences (rose, fell, verdict)."""
    out = []
    if regression.get("reason"):
        out.append(f"No phrase comparison between versions: {regression['reason']}.")
    for key, verb in (("phrases_rose", "rose"), ("phrases_fell", "fell")):
        for row in regression.get(key, [])[:N_PER_KIND]:
            p = row["p_rose"] if verb == "rose" else 1.0 - row["p_rose"]
            prefix = "Uncertain: " if is_uncertain(p) else ""
            out.append(f"{prefix}{'t' if prefix else 'T'}he estimated loss of '{row['phrase']}' {verb} from "
                       f"percentile {_n(row['previous'], 0)} to {_n(row['current'], 0)} "
                       f"(median change {_n(row['change'], 1)} points, P({verb}) = {_n(p)}).")
    for row in regression.get("attributes_measured", [])[:N_PER_KIND]:
        out.append(f"Measured {row['metric']} disparity of '{row['attribute']}' went from "
                   f"{row['previous']:+.3f} to {row['current']:+.3f}.")
    if regression.get("significant_regression"):
        out.append("Significant regression: " + "; ".join(regression.get("reasons", [])) + ".")
    else:
        out.append("No significant regression by the rule: " + str(regression.get("rule", "")) + ".")
    return out
