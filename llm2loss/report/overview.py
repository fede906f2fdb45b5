"""The report's first screen: the verdict block and the order of "what to check next".

`overview(metrics, regression)` gathers what a reader needs before any table: the audited
release, its overall held-out metrics (error rate, mean loss, sample counts) and, for a version
with a predecessor, their change (previous -> current, ratio) with a severity label, whether the
version regressed significantly (a measured change, `llm2loss.regression`: high), whether its
diagnosers only predict a regression (estimated phrase rises: medium, said to be predictions),
and its biggest phrase change. `overview_html` and
`overview_markdown` render it; every user string is escaped there.

`check_next_groups(findings)` orders the headline findings for reading: cautions first, then the
stated findings, then the facts of the audit, then the uncertain ones (each with its reason).
Severities come from `llm2loss.report.findings`; nothing here decides what is stated.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

# _overall_changes is the findings' own rule for the overall change and its severity: the first
# screen shows exactly what the regression findings state, never a second rule.
from llm2loss.regression import is_regression, measured_reasons, predictions
from llm2loss.report.findings import Finding, _overall_changes
from llm2loss.report.tables import fmt

#: Severity labels shown beside a change; "low" is a change that did not make the model worse.
SEVERITIES = ("high", "medium", "low")
_METRICS = (("test_error_rate", "Held-out error rate"), ("test_loss_mean", "Held-out mean loss"))


@dataclass
class Change:
    """One overall held-out metric, previous -> current, with its ratio and severity."""

    label: str
    previous: float
    current: float
    ratio: float | None
    severity: str
    sentence: str


@dataclass
class Overview:
    """What the first screen states about one audit."""

    release: str
    previous_release: str | None
    metrics: list[tuple[str, Any]]
    changes: list[Change] = field(default_factory=list)
    regressed: bool | None = None
    reasons: int = 0
    predicted: int = 0
    biggest_phrase: str | None = None
    stated: int = 0
    uncertain: int = 0


def _release(model: Any, version: Any) -> str:
    return f"{model or 'a model'}@{version or '?'}"


def _changes(regression: dict[str, Any]) -> list[Change]:
    """The overall changes, each with the severity `findings` gives its sentence."""
    out = []
    for key, label in _METRICS:
        entry = (regression.get("overall") or {}).get(key) or {}
        before, after = entry.get("previous"), entry.get("current")
        sentences = _overall_changes({"overall": {key: entry}})
        if before is None or after is None or not sentences:
            continue
        ratio = after / before if before > 0 else None
        out.append(Change(label, before, after, ratio, sentences[0].severity or "low",
                          sentences[0].text))
    return out


def _biggest_phrase(regression: dict[str, Any]) -> str | None:
    rows = regression.get("phrases_rose") or []
    if not rows:
        return None
    top = max(rows, key=lambda r: r.get("change") or 0.0)
    return (f"'{top['phrase']}' rose from percentile {fmt_points(top.get('previous'))} to "
            f"{fmt_points(top.get('current'))} (P(rose) = {fmt(top.get('p_rose'))})")


def fmt_points(value: Any) -> str:
    """A percentile as a whole number, n/a for None."""
    return "n/a" if value is None else f"{value:.0f}"


def _is_stated(finding: str) -> bool:
    verdict = getattr(finding, "verdict", None)
    return verdict is not None and verdict != "uncertain" and not finding.startswith("Uncertain")


def _is_uncertain(finding: str) -> bool:
    return getattr(finding, "verdict", None) == "uncertain" or finding.startswith("Uncertain")


def overview(metrics: dict[str, Any], regression: dict[str, Any] | None,
             findings: list[Finding]) -> Overview:
    """The first screen's facts from the metrics, the regression report and the findings."""
    s = metrics.get("summary", {}) or {}
    data = metrics.get("data", {}) or {}
    split = s.get("split") or metrics.get("split") or {}
    result = Overview(
        release=_release(s.get("model"), s.get("version")), previous_release=None,
        metrics=[("Held-out error rate", data.get("test_error_rate")),
                 ("Held-out mean loss", data.get("test_loss_mean")),
                 ("Held-out samples", split.get("test", data.get("n_test"))),
                 ("Training samples", split.get("train", data.get("n_train")))],
        stated=sum(_is_stated(f) for f in findings),
        uncertain=sum(_is_uncertain(f) for f in findings))
    if regression is not None:
        previous = regression.get("previous") or {}
        result.previous_release = _release(previous.get("model"), previous.get("version"))
        result.changes = _changes(regression)
        result.regressed = is_regression(regression)  # measured changes only
        result.reasons = len(measured_reasons(regression))
        result.predicted = len(predictions(regression))
        result.biggest_phrase = _biggest_phrase(regression)
    return result


def check_next_groups(findings: list[Finding]) -> list[tuple[str, list[Finding]]]:
    """The findings in reading order, as (group title, findings); empty groups are left out."""
    cautions = [f for f in findings if not _is_stated(f) and not _is_uncertain(f)
                and getattr(f, "severity", None) == "high"]
    stated = [f for f in findings if _is_stated(f)]
    uncertain = [f for f in findings if _is_uncertain(f)]
    facts = [f for f in findings if f not in cautions and f not in stated and f not in uncertain]
    groups = [("Read first", cautions), ("Stated: backed by the held-out samples", stated),
              ("About this audit", facts),
              ("Uncertain: not stated, with the reason", uncertain)]
    return [(title, items) for title, items in groups if items]


# --------------------------------------------------------------------------- rendering


def _ratio(change: Change) -> str:
    if change.ratio is None:
        return "n/a"
    return f"x{change.ratio:.1f}" if change.ratio >= 1 else f"x{change.ratio:.2f}"


def _status(view: Overview) -> tuple[str, str]:
    """(label, sentence) of the version-to-version verdict; "baseline" for a first version."""
    if view.regressed is None:
        return "baseline", "First audited version: no previous version to compare against."
    if view.regressed:
        return "high", (f"Significant regression against {view.previous_release}, measured "
                        f"({view.reasons} reason{'s' if view.reasons != 1 else ''}, listed under "
                        "What changed).")
    if view.predicted:  # estimated phrase rises only: a prediction, not a measured regression
        return "medium", (f"No measured regression against {view.previous_release}; "
                          f"{view.predicted} estimated rise{'s' if view.predicted != 1 else ''} "
                          "crossed the rule (predictions, listed under What changed), so the "
                          "change is uncertain.")
    return "low", f"No significant regression against {view.previous_release}."


def severity_badge(severity: str) -> str:
    """A coloured label: high (red), medium (orange), low (green), anything else grey."""
    cls = severity if severity in SEVERITIES else "none"
    return f'<span class="sev {cls}">{html.escape(severity)}</span>'


def overview_html(view: Overview) -> str:
    """The verdict block (id "verdict") as HTML, every user string escaped."""
    severity, status = _status(view)
    parts = [f'<div class="verdict-block" id="verdict"><p class="status">{severity_badge(severity)}'
             f" {html.escape(status)}</p>"]
    cards = "".join(f'<div class="card"><div class="label">{html.escape(name)}</div>'
                    f'<div class="value">{html.escape(fmt(value))}</div></div>'
                    for name, value in view.metrics)
    parts.append(f'<div class="cards">{cards}</div>')
    if view.changes:
        rows = "".join(
            f"<tr><td>{html.escape(c.label)}</td><td class=\"num\">{html.escape(fmt(c.previous))}"
            f'</td><td class="num">{html.escape(fmt(c.current))}</td><td class="num">'
            f"{html.escape(_ratio(c))}</td><td>{severity_badge(c.severity)}</td></tr>"
            for c in view.changes)
        previous = html.escape(view.previous_release or "previous")
        parts.append(
            f'<div class="scroll"><table id="table-overall-change"><thead><tr><th>Change since '
            f"{previous}</th><th>Previous</th><th>Current</th><th>Ratio</th><th>Severity</th>"
            f"</tr></thead><tbody>{rows}</tbody></table></div>")
        worst = max(view.changes, key=lambda c: SEVERITIES[::-1].index(c.severity))
        parts.append(f'<p class="biggest">Biggest change: {html.escape(worst.sentence)}</p>')
    if view.biggest_phrase:
        parts.append(f'<p class="note">Largest estimated phrase rise (a prediction, not measured): {html.escape(view.biggest_phrase)}</p>')
    parts.append(f'<p class="note">{view.stated} finding{"s" if view.stated != 1 else ""} stated, '
                 f"{view.uncertain} uncertain: see What to check next.</p></div>")
    return "".join(parts)


def overview_markdown(view: Overview, escape: Any) -> str:
    """The verdict block as Markdown; `escape` is the report's Markdown escaper."""
    _, status = _status(view)
    lines = [f"**{escape(status)}**", ""]
    lines += [f"- {escape(name)}: {escape(fmt(value))}" for name, value in view.metrics]
    lines.append("")
    if view.changes:
        lines += [f"| Change since {escape(view.previous_release)} | Previous | Current | Ratio | "
                  "Severity |", "|---|---|---|---|---|"]
        lines += [f"| {escape(c.label)} | {fmt(c.previous)} | {fmt(c.current)} | {_ratio(c)} | "
                  f"{c.severity} |" for c in view.changes]
        lines.append("")
    if view.biggest_phrase:
        lines += [f"Largest estimated phrase rise (a prediction, not measured): {escape(view.biggest_phrase)}", ""]
    lines += [f"{view.stated} findings stated, {view.uncertain} uncertain.", ""]
    return "\n".join(lines)
