"""Version against version: what changed in a model's failures since its previous release.

`compare_versions` places every phrase, by every member of each version's primary loss
diagnoser, at its percentile among that version's held-out scores (`llm2loss.analysis.scale`),
so two models whose losses differ in scale meet on one scale; P(rose) is the fraction of
(previous member, current member) pairs whose current percentile is above the previous one.

What counts as a regression. The report states a regression only on a *measured* change:
held-out truth, the same in both versions' eyes (`REGRESSION_RULE`): a labelled attribute's
error-rate disparity that grew, or a phrase pair whose measured loss gap (between the held-out
samples each phrase retrieves) became significant. A phrase whose *estimated* loss rose is a
prediction of the diagnosers, however confident: it is listed under `predicted` ("uncertain",
medium), never under `reasons`, and never makes `significant_regression` true, so the release
gate (`llm2loss.gate`) does not fail on it. Reports written before this rule counted estimated
rises among their reasons; `measured_reasons` and `predictions` read both kinds alike.

Method changes. Each version's diagnoser says how it reads phrases (`text_readout_`: "heads", or
"linear" since the linear readout, `llm2loss.diagnoser.readout`; older saves read as "heads"),
and with what epoch cap it was fitted. When either differs, the estimated changes mix the
model's change with the method's: the report says so (`readout_note`) and its findings mark
every estimated change uncertain; the measured changes are unaffected.
Numpy only: no torch is imported here (the diagnosers come in fitted).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from llm2loss.analysis.scale import percentiles, quartiles
from llm2loss.analysis.schema import PRIMARY_LOSS, SCHEMA_VERSION, TOP_K, jsonable
from llm2loss.errors import DataError

if TYPE_CHECKING:
    from llm2loss.diagnoser import LossDiagnoser

__all__ = ["REGRESSION_RULE", "compare_versions", "is_regression", "measured_reasons", "predictions",
           "regression_phrases"]

#: A phrase or attribute is *predicted* to regress when its median percentile rose by at least
#: this many points with P(rose) >= REGRESSION_P (a prediction: never a regression by itself) ...
REGRESSION_PERCENTILE_POINTS = 15.0
REGRESSION_P = 0.9
#: ... a regression is measured when a per-attribute error-rate disparity grew (in absolute
#: value) by at least this, or a pair's measured gap became significant (interval excludes 0)
#: where it did not before, or flipped to the other side of 0 and is larger than it was. A gap
#: that flipped but shrank (v1's HTML mail +4.4 worse, v2's 0.25 better) is a smaller
#: disparity, not a regression: it is listed among the measured changes, never as a reason.
REGRESSION_ERROR_DISPARITY = 0.05
#: The phrases of an estimated reason start so (reports written before the measured-only rule).
_ESTIMATED_PREFIXES = ("phrase ", "attribute ")

REGRESSION_RULE = (
    f"significant_regression is true only on a measured change: a measured per-attribute "
    f"error-rate disparity grew in absolute value by at least {REGRESSION_ERROR_DISPARITY:g}, or "
    f"the measured loss gap between the held-out samples two phrases of a pair retrieve became "
    f"significant (its 90% bootstrap interval excludes 0 now and did not before) or flipped to "
    f"the other side of 0 with a larger absolute gap than before; a phrase whose estimated median percentile among held-out samples rose by "
    f"at least {REGRESSION_PERCENTILE_POINTS:g} points with P(rose) >= {REGRESSION_P:g} over all "
    f"(previous member, current member) pairs is a prediction, listed as such, not a regression"
)


def regression_phrases(prev_metrics: dict[str, Any], cur_metrics: dict[str, Any]) -> list[str]:
    """The phrases `compare_versions` needs embeddings of: both versions' phrases, sorted."""
    found: set[str] = set()
    for metrics in (prev_metrics, cur_metrics):
        found.update(metrics.get("phrases_used", []))
        for row in metrics.get("attributes", {}).get("rows", []):
            found.update((row["phrase_attr"], row["phrase_not"]))
    return sorted(found)


def _pair_change(prev: np.ndarray, cur: np.ndarray) -> dict[str, Any]:
    """Change cur - prev over all (previous member, current member) pairs of percentiles."""
    change = (cur[None, :] - prev[:, None]).ravel()
    return {"previous": float(prev.mean()), "current": float(cur.mean()),
            "change": float(np.median(change)), "p_rose": float((change > 0).mean() + 0.5 * (change == 0).mean()),
            "quartiles": quartiles(change)}


def _common_loss_diagnoser(prev_diagnosers: dict[str, Any], prev_metrics: dict[str, Any],
                           cur_diagnosers: dict[str, Any], cur_metrics: dict[str, Any]) -> str | None:
    """The current primary loss diagnoser when both versions have it, else the best common one."""
    names = [cur_metrics.get("primary", {}).get("loss"), *PRIMARY_LOSS]
    for name in names:
        if (name and name in prev_diagnosers and name in cur_diagnosers
                and name in prev_metrics.get("score_quantiles", {})
                and name in cur_metrics.get("score_quantiles", {})):
            return name
    return None


def _measured_changes(prev_metrics: dict[str, Any], cur_metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """Per attribute in both versions and per measured metric: previous, current, change."""
    prev_rows = {r["attribute"]: r for r in prev_metrics.get("attributes", {}).get("rows", [])}
    out = []
    for row in cur_metrics.get("attributes", {}).get("rows", []):
        before = prev_rows.get(row["attribute"])
        if before is None:
            continue
        for metric in ("loss", "error"):
            if row["measured"].get(metric) is None or before["measured"].get(metric) is None:
                continue
            p, c = before["measured"][metric]["signed"], row["measured"][metric]["signed"]
            if p is None or c is None:
                continue
            out.append({"attribute": row["attribute"], "metric": metric, "previous": p,
                        "current": c, "change": c - p, "absolute_change": abs(c) - abs(p)})
    return out


def _measured_pair_changes(prev_metrics: dict[str, Any],
                           cur_metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """Per phrase pair compared in both versions: the measured gap (a minus b, among the held-out
    samples each phrase retrieves) with its interval, before and now, and whether it became
    significant: its interval excludes 0 now and did not before, or it flipped to the other side
    of 0 and its absolute gap grew (a flip to a smaller gap is a smaller disparity)."""
    def gap(row: dict[str, Any]) -> tuple[float | None, float | None, float | None]:
        return row.get("measured_diff"), row.get("measured_low"), row.get("measured_high")

    def side(low: float | None, high: float | None) -> int:
        if low is None or high is None:
            return 0
        return 1 if low > 0 else -1 if high < 0 else 0

    before = {(r["a"], r["b"]): r for r in prev_metrics.get("comparisons", {}).get("rows", [])}
    out = []
    for row in cur_metrics.get("comparisons", {}).get("rows", []):
        old = before.get((row["a"], row["b"]))
        if old is None or row.get("measured_diff") is None or old.get("measured_diff") is None:
            continue
        (p, p_low, p_high), (c, c_low, c_high) = gap(old), gap(row)
        now, then = side(c_low, c_high), side(p_low, p_high)
        out.append({"a": row["a"], "b": row["b"], "source": row.get("source"),
                    "previous": p, "previous_low": p_low, "previous_high": p_high,
                    "current": c, "current_low": c_low, "current_high": c_high,
                    "became_significant": now != 0 and now != then and (then == 0 or abs(c) > abs(p))})
    return out


def compare_versions(*, prev_diagnosers: dict[str, LossDiagnoser], prev_metrics: dict[str, Any],
                     cur_diagnosers: dict[str, LossDiagnoser], cur_metrics: dict[str, Any],
                     phrase_embeddings: Any, phrases: list[str], top_k: int = TOP_K) -> dict[str, Any]:
    """The regression report of a version against the previous one (same dataset and encoder).

    Phrases (module doc): per phrase, previous/current mean percentile, median change and
    P(rose). Attributes: the same for the percentile gap between the "attr" and "not attr"
    phrases (estimated), the change of the measured disparities, and of the measured gap of
    every phrase pair. `significant_regression` and `reasons` follow `REGRESSION_RULE` (measured
    changes only); `predicted` lists the estimated rises that cross the rule's thresholds.
    """
    name = _common_loss_diagnoser(prev_diagnosers, prev_metrics, cur_diagnosers, cur_metrics)
    report: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "method": "percentile",
                              "rule": REGRESSION_RULE, "diagnoser": name,
                              "previous": {k: prev_metrics.get("summary", {}).get(k)
                                           for k in ("model", "version")},
                              "current": {k: cur_metrics.get("summary", {}).get(k)
                                          for k in ("model", "version")}}
    phrase_rows: list[dict[str, Any]] = []
    attribute_rows: list[dict[str, Any]] = []
    if name is None:
        report["reason"] = ("the two versions share no loss diagnoser with held-out score "
                            "quantiles; audit both with the same diagnoser settings")
    elif phrases:
        E = np.asarray(phrase_embeddings, dtype=np.float32)
        if E.shape[0] != len(phrases):
            raise DataError(f"phrase_embeddings has {E.shape[0]} rows for {len(phrases)} phrases; "
                            "encode exactly the given phrases, in order")
        prev_pct = percentiles(prev_diagnosers[name].predict_members(E, space="text"),
                               np.asarray(prev_metrics["score_quantiles"][name]))
        cur_pct = percentiles(cur_diagnosers[name].predict_members(E, space="text"),
                              np.asarray(cur_metrics["score_quantiles"][name]))
        report.update(_readouts(prev_diagnosers[name], cur_diagnosers[name]))
        index = {p: i for i, p in enumerate(phrases)}
        phrase_rows = [{"phrase": p, **_pair_change(prev_pct[:, i], cur_pct[:, i])}
                       for p, i in index.items()]
        attribute_rows = _estimated_attribute_changes(prev_metrics, cur_metrics, index,
                                                      prev_pct, cur_pct)
    measured = _measured_changes(prev_metrics, cur_metrics)
    pairs = _measured_pair_changes(prev_metrics, cur_metrics)
    report["phrases_rose"] = sorted((r for r in phrase_rows if r["change"] > 0),
                                    key=lambda r: -r["change"])[:top_k]
    report["phrases_fell"] = sorted((r for r in phrase_rows if r["change"] < 0),
                                    key=lambda r: r["change"])[:top_k]
    report["attributes_estimated"] = sorted(attribute_rows, key=lambda r: -abs(r["change"]))
    report["attributes_measured"] = sorted(measured, key=lambda r: -abs(r["absolute_change"]))
    report["pairs_measured"] = pairs
    report["overall"] = {k: {"previous": prev_metrics.get("data", {}).get(k),
                             "current": cur_metrics.get("data", {}).get(k)}
                         for k in ("test_loss_mean", "test_error_rate")}
    reasons = _measured_regressions(measured, pairs)
    report["significant_regression"] = bool(reasons)
    report["reasons"] = reasons
    report["predicted"] = _predicted_rises(phrase_rows + attribute_rows)
    return jsonable(report)


#: How a diagnoser scores phrases, in a user's words (`text_readout_`).
_READ_AS = {"heads": "with its MLP heads at each phrase's point",
            "linear": "with a linear fit of its scores over the data"}


def _readouts(prev: Any, cur: Any) -> dict[str, Any]:
    """How each version's diagnoser reads phrases, and a note when they or the epoch cap differ
    (module doc). Attributes a diagnoser lacks (older saves, the numpy scorer) are not compared,
    except the readout, which older saves lack because they read with the heads."""
    readouts = {"previous": str(getattr(prev, "text_readout_", "heads")),
                "current": str(getattr(cur, "text_readout_", "heads"))}
    out: dict[str, Any] = {"text_readouts": readouts}
    changes = []
    if readouts["previous"] != readouts["current"]:
        said = [_READ_AS.get(r, repr(r)) for r in (readouts["previous"], readouts["current"])]
        changes.append(f"phrases scored {said[0]} before and {said[1]} now")
    epochs = [getattr(d, "max_epochs", None) for d in (prev, cur)]
    if None not in epochs and epochs[0] != epochs[1]:
        changes.append(f"fits capped at {epochs[0]} epochs before and {epochs[1]} now")
    if changes:
        out["readout_note"] = (
            "the two versions' diagnosers were fitted or read differently (" + "; ".join(changes)
            + "), so the estimated changes mix the change of the model with the change of method "
            "(the measured ones do not); audit the previous version again with this llm2loss and "
            "the same settings to compare estimates like with like")
    return out


def _estimated_attribute_changes(prev_metrics: dict[str, Any], cur_metrics: dict[str, Any],
                                 index: dict[str, int], prev_pct: np.ndarray,
                                 cur_pct: np.ndarray) -> list[dict[str, Any]]:
    """Per attribute of both versions: change of the percentile gap P(attr) - P(not attr)."""
    prev_names = {r["attribute"] for r in prev_metrics.get("attributes", {}).get("rows", [])}
    out = []
    for row in cur_metrics.get("attributes", {}).get("rows", []):
        yes, no = row["phrase_attr"], row["phrase_not"]
        if row["attribute"] not in prev_names or yes not in index or no not in index:
            continue
        gap_prev = prev_pct[:, index[yes]] - prev_pct[:, index[no]]
        gap_cur = cur_pct[:, index[yes]] - cur_pct[:, index[no]]
        out.append({"attribute": row["attribute"], "phrase_attr": yes, "phrase_not": no,
                    **_pair_change(gap_prev, gap_cur)})
    return out


def _measured_regressions(measured: list[dict[str, Any]],
                          pairs: list[dict[str, Any]]) -> list[str]:
    """The sentences saying why a regression is significant: measured changes only (empty list:
    it is not)."""
    reasons = []
    for row in measured:
        if row["metric"] == "error" and row["absolute_change"] >= REGRESSION_ERROR_DISPARITY:
            reasons.append(f"measured error-rate disparity of attribute {row['attribute']!r} grew "
                           f"in size from {row['previous']:+.3f} to {row['current']:+.3f}")
    for row in pairs:
        if row["became_significant"]:
            reasons.append(
                f"measured loss gap of {row['a']!r} minus {row['b']!r} (held-out samples each "
                f"phrase retrieves) is now {row['current']:+.3f}, 90% interval "
                f"[{row['current_low']:+.3f}, {row['current_high']:+.3f}] excluding 0; it was "
                f"{row['previous']:+.3f} [{row['previous_low']:+.3f}, {row['previous_high']:+.3f}]")
    return reasons


def _predicted_rises(estimated: list[dict[str, Any]]) -> list[str]:
    """The estimated rises that cross the rule's thresholds, each said to be a prediction."""
    out = []
    for row in estimated:
        if row["change"] >= REGRESSION_PERCENTILE_POINTS and row["p_rose"] >= REGRESSION_P:
            what = f"phrase {row['phrase']!r}" if "phrase" in row else f"attribute {row['attribute']!r}"
            out.append(f"{what} rose {row['change']:.1f} percentile points "
                       f"(P(rose) = {row['p_rose']:.2f}; estimated, not measured)")
    return out


def measured_reasons(report: dict[str, Any]) -> list[str]:
    """The measured reasons of a regression report, also of one written before the
    measured-only rule (whose `reasons` mixed in estimated phrase rises)."""
    return [str(r) for r in report.get("reasons") or [] if not str(r).startswith(_ESTIMATED_PREFIXES)]


def predictions(report: dict[str, Any]) -> list[str]:
    """The estimated rises of a regression report that cross the rule (predictions), also of a
    report written before the measured-only rule (which listed them among its `reasons`)."""
    if "predicted" in report:
        return [str(r) for r in report.get("predicted") or []]
    return [str(r) for r in report.get("reasons") or [] if str(r).startswith(_ESTIMATED_PREFIXES)]


def is_regression(report: dict[str, Any]) -> bool:
    """Whether a regression report states a measured regression (module doc)."""
    return bool(measured_reasons(report)) or (
        bool(report.get("significant_regression")) and not report.get("reasons"))
