"""Rendering of one audit's report as self-contained HTML and as Markdown.

The HTML page embeds its figures as base64 `data:` URIs and its CSS inline: it opens offline and
loads nothing from anywhere. Every string that may come from a user (phrases, names, reasons) goes
through `html.escape` (HTML) or `md_escape` (Markdown), so a phrase `<script>...</script>` shows as
text. Sections, in order: Summary, Headline findings, Per-sample validity, Familiarity, Failures
and unfamiliar concepts, Attributes (when present), Phrase comparisons, Regression (when given).
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass
from typing import Any

from llm2loss.report import figures, tables
from llm2loss.report.findings import headline_findings, regression_findings
from llm2loss.report.tables import Table, fmt

_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_[]|~#"})

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1150px;
color:#1a202c;line-height:1.45;padding:0 1rem}
h1{font-size:1.7rem;margin-bottom:.2rem} h2{border-bottom:2px solid #e2e8f0;padding-bottom:.2rem;
margin-top:2.2rem} table{border-collapse:collapse;margin:.6rem 0 1rem;font-size:.86rem}
th,td{border:1px solid #cbd5e0;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#edf2f7} td.num{text-align:right;font-variant-numeric:tabular-nums}
.note{color:#4a5568;font-size:.85rem} .uncertain{color:#975a16}
img{max-width:100%;border:1px solid #e2e8f0;margin:.5rem 0} ul.findings li{margin:.35rem 0}
img.thumb{width:64px;margin:0} details.examples{margin:.2rem 0 .4rem;font-size:.85rem}
details.examples td{max-width:46rem;overflow-wrap:anywhere}
.verdict{font-size:.75rem;padding:0 .35rem;border-radius:.6rem;background:#c6f6d5;color:#22543d}
.verdict.uncertain{background:#fefcbf;color:#744210}
"""


def md_escape(text: Any) -> str:
    """User text for Markdown: HTML characters as entities and Markdown syntax backslashed."""
    return html.escape(str(text), quote=False).translate(_MD_SPECIAL)


@dataclass
class Figure:
    """A rendered figure: file name, alt text and PNG bytes."""

    name: str
    alt: str
    png: bytes

    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


@dataclass
class Section:
    """A report section: anchor id, title, sentences, tables and figures, or why it is empty."""

    key: str
    title: str
    paragraphs: list[str]
    tables: list[Table]
    figures: list[Figure]
    bullets: list[str] | None = None


def build_sections(metrics: dict[str, Any], regression: dict[str, Any] | None, *,
                   with_figures: bool = True) -> list[Section]:
    """Every section of the report, in order, from the metrics (and the regression report).

    With `with_figures=False` no figure is drawn (text-only uses such as Prefect artifacts).
    """

    def _figure(name: str, alt: str, draw: Any, data: dict[str, Any]) -> list[Figure]:
        png = draw(data) if with_figures else None
        return [] if png is None else [Figure(name, alt, png)]

    fam = metrics.get("familiarity", {}) or {}
    att = metrics.get("attributes", {}) or {}
    sections = [
        Section("summary", "Summary", [], [tables.summary_table(metrics)], []),
        Section("findings", "Headline findings",
                ["A phrase finding is stated only when the ensemble members agree and the "
                 "held-out samples the phrases describe measure the same thing (and, where labels "
                 "exist, the encoder separates the phrases); otherwise it is marked Uncertain "
                 "with the reason. Each finding lists the held-out samples behind it."], [], [], bullets=headline_findings(metrics)),
        Section("validity", "Per-sample validity", [], [tables.validity_table(metrics)], []),
        Section("familiarity", "Familiarity",
                [] if fam.get("available") else [f"Not computed: {fam.get('reason')}."],
                [tables.familiarity_table(metrics), tables.probes_table(metrics)],
                _figure("familiarity.png", "Familiarity of probe phrases before and after the "
                        "sigmoid", figures.familiarity_figure, metrics)),
        Section("discovery", "Failures and unfamiliar concepts", [],
                [tables.failures_table(metrics), tables.least_familiar_table(metrics)],
                _figure("failures.png", "Phrases estimated to fail most",
                        figures.failures_figure, metrics)),
    ]
    if att.get("rows"):
        skipped = [f"{s['attribute']} ({s['reason']})" for s in att.get("skipped", [])]
        sections.append(Section(
            "attributes", "Attributes", [f"Skipped: {'; '.join(skipped)}."] if skipped else [],
            [tables.attributes_table(metrics), tables.agreement_table(metrics)],
            _figure("attributes.png", "Measured against predicted attribute disparities",
                    figures.attributes_figure, metrics)))
    sections.append(Section(
        "comparisons", "Phrase comparisons",
        [] if metrics.get("comparisons", {}).get("rows") else
        ["No phrase pairs were configured (audit.pairs) and the dataset has no attribute pairs."],
        [tables.comparisons_table(metrics)],
        _figure("comparisons.png", "Distribution of member differences per phrase pair",
                figures.comparisons_figure, metrics)))
    if regression is not None:
        previous = regression.get("previous") or {}
        sections.append(Section(
            "regression", "Regression vs previous version",
            [f"Previous version: {previous.get('model')}@{previous.get('version')}. "
             f"Significant regression: {fmt(bool(regression.get('significant_regression')))}.",
             f"Rule: {regression.get('rule', '')}."],
            tables.regression_tables(regression),
            _figure("regression.png", "Change of estimated loss per phrase",
                    figures.regression_figure, regression),
            bullets=regression_findings(regression)))
    return sections


# --------------------------------------------------------------------------- HTML


def _html_cell(value: Any) -> str:
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    cls = ' class="num"' if numeric else ""
    return f"<td{cls}>{html.escape(fmt(value))}</td>"


def html_table(table: Table) -> str:
    """A table as HTML (id `table-<key>`), every cell escaped."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in table.headers)
    body = "".join("<tr>" + "".join(_html_cell(v) for v in row) + "</tr>" for row in table.rows)
    if not table.rows:
        body = f'<tr><td colspan="{len(table.headers)}">(no rows)</td></tr>'
    note = f'<p class="note">{html.escape(table.note)}</p>' if table.note else ""
    return (f'<h3>{html.escape(table.title)}</h3>{note}<table id="table-{html.escape(table.key)}">'
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


_THUMBNAIL = re.compile(r"data:image/png;base64,[A-Za-z0-9+/]+={0,2}")
_SPACE = re.compile(r"\s+")


def _preview_html(preview: Any) -> str:
    """An example's preview: an inline PNG thumbnail (strictly a base64 PNG data URI) or text."""
    text = str(preview or "")
    if _THUMBNAIL.fullmatch(text):
        return f'<img class="thumb" src="{text}" alt="example sample">'
    return html.escape(_SPACE.sub(" ", text)) or '<span class="note">(no preview)</span>'


def _examples_html(examples: Any, key: str) -> str:
    """The example samples behind a finding, in a collapsible table."""
    if not examples:
        return ""
    rows = "".join(
        f"<tr><td>{html.escape(str(e.get('side') or ''))}</td><td>{html.escape(str(e.get('id')))}"
        f'</td><td class="num">{html.escape(fmt(e.get("loss")))}</td>'
        f"<td>{_preview_html(e.get('preview'))}</td></tr>"
        for e in examples if isinstance(e, dict))
    return (f'<details class="examples"><summary>{len(examples)} held-out samples behind this '
            f'finding</summary><table id="table-{html.escape(key)}"><thead><tr><th>phrase</th><th>id</th><th>loss</th>'
            f"<th>sample</th></tr></thead><tbody>{rows}</tbody></table></details>")


def _html_bullet(text: str, key: str) -> str:
    verdict = getattr(text, "verdict", None)
    uncertain = verdict == "uncertain" or text.startswith("Uncertain")
    cls = ' class="uncertain"' if uncertain else ""
    badge = ""
    if verdict is not None:
        label = "uncertain" if uncertain else "stated"
        badge = f'<span class="verdict {label}">{label}</span> '
    return (f"<li{cls}>{badge}{html.escape(text)}"
            f"{_examples_html(getattr(text, 'examples', ()), key)}</li>")


def html_section(section: Section) -> str:
    parts = [f'<section id="{section.key}"><h2>{html.escape(section.title)}</h2>']
    parts += [f"<p>{html.escape(p)}</p>" for p in section.paragraphs]
    if section.bullets is not None:
        parts.append('<ul class="findings">' + "".join(
            _html_bullet(b, f"{section.key}-examples-{i}") for i, b in enumerate(section.bullets))
            + "</ul>")
    parts += [f'<img src="{f.data_uri()}" alt="{html.escape(f.alt)}" data-file="{f.name}">'
              for f in section.figures]
    parts += [html_table(t) for t in section.tables]
    return "".join(parts) + "</section>"


def render_html(metrics: dict[str, Any], sections: list[Section]) -> str:
    """The whole self-contained page."""
    s = metrics.get("summary", {}) or {}
    title = f"llm2loss audit of {s.get('model') or 'a model'}@{s.get('version') or '?'}"
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
            f"<h1>{html.escape(title)}</h1>"
            f'<p class="note">metrics schema version {fmt(metrics.get("schema_version"))}</p>'
            + "".join(html_section(sec) for sec in sections) + "</body></html>\n")


# --------------------------------------------------------------------------- Markdown


def markdown_table(table: Table) -> str:
    """A table as GitHub-flavoured Markdown, every cell escaped."""
    lines = [f"### {md_escape(table.title)}", ""]
    if table.note:
        lines += [md_escape(table.note), ""]
    lines.append("| " + " | ".join(md_escape(h) for h in table.headers) + " |")
    lines.append("|" + "---|" * len(table.headers))
    lines += ["| " + " | ".join(md_escape(fmt(v)) for v in row) + " |" for row in table.rows]
    if not table.rows:
        lines.append("| (no rows) |" + " |" * (len(table.headers) - 1))
    return "\n".join(lines) + "\n"


def markdown_section(section: Section, *, with_figures: bool = True) -> str:
    lines = [f"## {md_escape(section.title)}", ""]
    lines += [md_escape(p) + "\n" for p in section.paragraphs]
    if section.bullets is not None:
        for bullet in section.bullets:
            lines.append(f"- {md_escape(bullet)}")
            for e in getattr(bullet, "examples", ())[:6]:
                preview = str(e.get("preview") or "")
                shown = "(image)" if preview.startswith("data:image/") else \
                    _SPACE.sub(" ", preview)[:160]
                lines.append(f"  - {md_escape(e.get('side') or '')} `{md_escape(e.get('id'))}` "
                             f"(loss {md_escape(fmt(e.get('loss')))}): {md_escape(shown)}")
        lines.append("")
    if with_figures:
        lines += [f"![{md_escape(f.alt)}]({f.name})\n" for f in section.figures]
    lines += [markdown_table(t) for t in section.tables]
    return "\n".join(lines)


def render_markdown(metrics: dict[str, Any], sections: list[Section]) -> str:
    """The whole report as Markdown; figures are linked as the PNG files next to it."""
    s = metrics.get("summary", {}) or {}
    title = f"llm2loss audit of {s.get('model') or 'a model'}@{s.get('version') or '?'}"
    return f"# {md_escape(title)}\n\n" + "\n".join(markdown_section(sec) for sec in sections)
