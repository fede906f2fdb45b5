"""The report's sections, in reading order, built once and rendered as HTML or Markdown.

Order: Verdict (the first screen: release, overall held-out metrics, the change since the previous
version with its severity), What to check next (the findings: stated first, uncertain after),
What changed (the regression against the previous version, when given), then the evidence under
plain headings with the paper's table or figure as a subtitle, and the audit facts (fingerprints,
stage times) last.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from llm2loss.regression import is_regression, measured_reasons, predictions
from llm2loss.report import figures, tables
from llm2loss.report.findings import Finding, headline_findings, regression_findings
from llm2loss.report.overview import Overview, check_next_groups, overview
from llm2loss.report.tables import Table, fmt


@dataclass
class Figure:
    """A rendered figure: file name, alt text, PNG bytes and a caption (how to read it)."""

    name: str
    alt: str
    png: bytes
    caption: str = ""

    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


@dataclass
class Section:
    """A report section: anchor id, title, sentences, tables and figures, or why it is empty.

    subtitle: where the section sits in the paper ("Table 2 of the paper").
    bullets: findings, shown as a list (with verdict badges and examples).
    groups: the same findings under group titles, when the section orders them for reading.
    reasons: a titled list of plain sentences (the regression rule's reasons).
    view: the verdict block (the first section only).
    """

    key: str
    title: str
    paragraphs: list[str]
    tables: list[Table]
    figures: list[Figure]
    bullets: list[str] | None = None
    subtitle: str = ""
    groups: list[tuple[str, list[Finding]]] | None = None
    reasons: tuple[str, list[str]] | None = None
    view: Overview | None = None
    notes: list[str] = field(default_factory=list)


FINDINGS_NOTE = ("A phrase finding is stated only when the ensemble members agree and the held-out "
                 "samples the phrases describe measure the same thing (and, where labels exist, "
                 "the encoder separates the phrases); otherwise it is marked Uncertain with the "
                 "reason. Each finding lists the held-out samples behind it.")


def _regression_section(regression: dict[str, Any], figure: list[Figure]) -> Section:
    """What changed since the previous version: the overall change, the rule's verdict with its
    reasons as a list, the phrase and attribute changes, the rule, figure and tables."""
    previous = regression.get("previous") or {}
    said = regression_findings(regression)
    verdict = said[-1] if said and (said[-1].startswith("Significant regression")
                                    or said[-1].startswith("No significant regression")) else None
    bullets = [f for f in said if f is not verdict]
    reasons = None
    regressed = is_regression(regression)  # measured changes only (llm2loss.regression)
    if regressed:
        reasons = ("Significant regression", measured_reasons(regression))
    elif predictions(regression):
        reasons = ("Predicted, not measured", predictions(regression))
    paragraphs = [f"Previous version: {previous.get('model')}@{previous.get('version')}. "
                  f"Significant regression: {fmt(regressed)}."]
    notes = [f"Rule: {regression.get('rule', '')}."]
    if verdict is not None and reasons is None:
        paragraphs.append(verdict.text)  # "No significant regression by the rule: <rule>."
        notes = []
    title = f"What changed since {previous.get('version') or 'the previous version'}"
    return Section("regression", title, paragraphs, tables.regression_tables(regression), figure,
                   bullets=bullets, reasons=reasons, notes=notes)


def build_sections(metrics: dict[str, Any], regression: dict[str, Any] | None, *,
                   with_figures: bool = True) -> list[Section]:
    """Every section of the report, in reading order, from the metrics (and the regression).

    With `with_figures=False` no figure is drawn (text-only uses such as Prefect artifacts).
    """

    def _figure(name: str, alt: str, draw: Any, data: dict[str, Any],
                caption: str = "") -> list[Figure]:
        png = draw(data) if with_figures else None
        return [] if png is None else [Figure(name, alt, png, caption)]

    fam = metrics.get("familiarity", {}) or {}
    att = metrics.get("attributes", {}) or {}
    findings = headline_findings(metrics)
    sections = [
        Section("overview", "Verdict", [], [], [], view=overview(metrics, regression, findings)),
        Section("findings", "What to check next", [], [], [], bullets=findings,
                groups=check_next_groups(findings), subtitle=FINDINGS_NOTE),
    ]
    if regression is not None:
        sections.append(_regression_section(regression, _figure(
            "regression.png", "Change of estimated loss per phrase", figures.regression_figure,
            regression, "Median change of each phrase's estimated percentile; whiskers are the "
            "quartiles over (previous member, current member) pairs.")))
    sections += [
        Section("validity", "How well the diagnosers order samples", [],
                [tables.validity_table(metrics)], [], subtitle="Table 2 of the paper"),
        Section("familiarity", "Which concepts the model knows",
                [] if fam.get("available") else [f"Not computed: {fam.get('reason')}."],
                [tables.familiarity_table(metrics), tables.probes_table(metrics)],
                _figure("familiarity.png", "Familiarity of probe phrases before and after the "
                        "sigmoid", figures.familiarity_figure, metrics),
                subtitle="Table 1 and Figure 2 of the paper"),
        Section("discovery", "Where the model is estimated to fail", [],
                [tables.failures_table(metrics), tables.least_familiar_table(metrics)],
                _figure("failures.png", "Phrases estimated to fail most",
                        figures.failures_figure, metrics, figures.failures_caption(metrics))),
    ]
    if att.get("rows"):
        skipped = [f"{s['attribute']} ({s['reason']})" for s in att.get("skipped", [])]
        sections.append(Section(
            "attributes", "Labelled attributes: measured and predicted disparities",
            [f"Skipped: {'; '.join(skipped)}."] if skipped else [],
            [tables.attributes_table(metrics), tables.attributes_predicted_table(metrics),
             tables.agreement_table(metrics)],
            _figure("attributes.png", "Measured against predicted attribute disparities",
                    figures.attributes_figure, metrics, figures.attributes_caption(metrics)),
            subtitle="Tables 3-5 of the paper", notes=tables.attribute_notes(metrics)))
    sections.append(Section(
        "comparisons", "Phrase pairs: which one fails more",
        [] if metrics.get("comparisons", {}).get("rows") else
        ["No phrase pairs were configured (audit.pairs) and the dataset has no attribute pairs."],
        [tables.comparisons_table(metrics)],
        _figure("comparisons.png", "Distribution of member differences per phrase pair",
                figures.comparisons_figure, metrics,
                "One box per pair: the ensemble members' estimated loss of a minus b, in "
                "percentile points of held-out samples; P is the share of members that put a "
                "above b."),
        subtitle="Figure 3 of the paper"))
    sections.append(Section("summary", "Audit facts", [], [tables.summary_table(metrics)], [],
                            subtitle="fingerprints, sample counts and stage times"))
    return sections
