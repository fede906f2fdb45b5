"""Rendering of one audit's report as self-contained HTML and as Markdown.

The HTML page embeds its figures as base64 `data:` URIs and its CSS inline: it opens offline and
loads nothing from anywhere. Every string that may come from a user (phrases, names, reasons) goes
through `html.escape` (HTML) or `md_escape` (Markdown), so a phrase `<script>...</script>` shows as
text. The sections and their order are `llm2loss.report.sections`'. Every table sits in a box that
scrolls sideways (`div.scroll`), so a wide table never widens the page.
"""

from __future__ import annotations

import html
import re
from typing import Any

from llm2loss.report.overview import overview_html, overview_markdown, severity_badge
from llm2loss.report.sections import Figure, Section, build_sections
from llm2loss.report.tables import Table, fmt

__all__ = ["CSS", "Figure", "Section", "build_sections", "html_section", "html_table",
           "markdown_section", "markdown_table", "md_escape", "render_html", "render_markdown"]

#: Tables with more rows than this are folded (a click shows them); reasons lists likewise.
LONG_TABLE = 25
SHOWN_REASONS = 6
_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_[]|~#"})

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1150px;
color:#1a202c;line-height:1.45;padding:0 1rem}
h1{font-size:1.7rem;margin-bottom:.2rem;overflow-wrap:anywhere} h2{border-bottom:2px solid #e2e8f0;
padding-bottom:.2rem;margin-top:2.2rem;margin-bottom:.2rem} h3{margin:1.2rem 0 .3rem}
.subtitle{color:#4a5568;font-size:.9rem;margin:.1rem 0 .6rem}
table{border-collapse:collapse;margin:.6rem 0 1rem;font-size:.86rem}
th,td{border:1px solid #cbd5e0;padding:.25rem .5rem;text-align:left;vertical-align:top}
th{background:#edf2f7} td.num{text-align:right;font-variant-numeric:tabular-nums}
.scroll td.text{min-width:9rem} .scroll td.long{min-width:18rem}
.scroll{overflow-x:auto;max-width:100%} .scroll table{margin-top:0}
.note{color:#4a5568;font-size:.85rem} .uncertain{color:#975a16}
img{max-width:100%;height:auto;border:1px solid #e2e8f0;margin:.5rem 0}
figure{margin:.6rem 0 1rem} figcaption{color:#4a5568;font-size:.85rem}
ul.findings li{margin:.35rem 0;overflow-wrap:anywhere}
img.thumb{width:64px;margin:0} details.examples{margin:.2rem 0 .4rem;font-size:.85rem}
details.examples td{max-width:46rem;overflow-wrap:anywhere}
.verdict{font-size:.75rem;padding:0 .35rem;border-radius:.6rem;background:#c6f6d5;color:#22543d}
.verdict.uncertain{background:#fefcbf;color:#744210}
.sev{font-size:.75rem;font-weight:600;padding:.05rem .45rem;border-radius:.6rem;
text-transform:uppercase;letter-spacing:.03em;background:#e2e8f0;color:#2d3748}
.sev.high{background:#c53030;color:#fff} .sev.medium{background:#dd6b20;color:#fff}
.sev.low{background:#2f855a;color:#fff}
.verdict-block{border:1px solid #cbd5e0;border-radius:.4rem;padding:.6rem 1rem;background:#f7fafc}
.verdict-block .status{font-size:1.15rem;font-weight:600;margin:.2rem 0 .6rem}
.cards{display:flex;flex-wrap:wrap;gap:.6rem;margin-bottom:.6rem}
.card{border:1px solid #cbd5e0;border-radius:.3rem;padding:.3rem .8rem;background:#fff;min-width:9rem}
.card .label{color:#4a5568;font-size:.8rem} .card .value{font-size:1.3rem;font-weight:600}
.biggest{font-weight:600;margin:.3rem 0} details.more{margin:-.6rem 0 1rem 2.5rem}
details>summary{cursor:pointer;color:#2b6cb0}
nav.toc{font-size:.85rem;color:#4a5568} nav.toc a{color:#2b6cb0;margin-right:.8rem}
"""


def md_escape(text: Any) -> str:
    """User text for Markdown: HTML characters as entities and Markdown syntax backslashed."""
    return html.escape(str(text), quote=False).translate(_MD_SPECIAL)


# --------------------------------------------------------------------------- HTML


def _html_cell(value: Any) -> str:
    """A cell: numbers right-aligned; long text gets a minimum width so that a wide table
    scrolls instead of squeezing its phrases to one word per line."""
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    text = fmt(value)
    cls = ' class="num"' if numeric else ' class="long"' if len(text) > 60 else \
        ' class="text"' if len(text) > 24 else ""
    return f"<td{cls}>{html.escape(text)}</td>"


def html_table(table: Table) -> str:
    """A table as HTML (id `table-<key>`) in a box that scrolls sideways, every cell escaped."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in table.headers)
    body = "".join("<tr>" + "".join(_html_cell(v) for v in row) + "</tr>" for row in table.rows)
    if not table.rows:
        body = f'<tr><td colspan="{len(table.headers)}">(no rows)</td></tr>'
    note = f'<p class="note">{html.escape(table.note)}</p>' if table.note else ""
    box = (f'<div class="scroll"><table id="table-{html.escape(table.key)}">'
           f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>")
    if len(table.rows) > LONG_TABLE:
        box = f"<details><summary>Show all {len(table.rows)} rows</summary>{box}</details>"
    return f"<h3>{html.escape(table.title)}</h3>{note}{box}"


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
            f'finding</summary><div class="scroll"><table id="table-{html.escape(key)}"><thead>'
            f"<tr><th>phrase</th><th>id</th><th>loss</th><th>sample</th></tr></thead>"
            f"<tbody>{rows}</tbody></table></div></details>")


def _html_bullet(text: str, key: str) -> str:
    """One finding: verdict badge, severity label, the escaped sentence, its examples."""
    verdict = getattr(text, "verdict", None)
    uncertain = verdict == "uncertain" or text.startswith("Uncertain")
    cls = ' class="uncertain"' if uncertain else ""
    badge = ""
    if verdict is not None:
        label = "uncertain" if uncertain else "stated"
        badge = f'<span class="verdict {label}">{label}</span> '
    severity = getattr(text, "severity", None)
    if severity:
        badge += severity_badge(str(severity)) + " "
    return (f"<li{cls}>{badge}{html.escape(text)}"
            f"{_examples_html(getattr(text, 'examples', ()), key)}</li>")


def _html_findings(section: Section) -> str:
    """The section's findings: under their group titles when it has groups, else one list.
    Example tables are keyed by the finding's place in `section.bullets` (stable ids)."""
    bullets = section.bullets or []
    index = {id(b): i for i, b in enumerate(bullets)}

    def _list(items: list[Any]) -> str:
        return '<ul class="findings">' + "".join(
            _html_bullet(b, f"{section.key}-examples-{index.get(id(b), n)}")
            for n, b in enumerate(items)) + "</ul>"

    if section.groups is None:
        return _list(bullets)
    return "".join(f'<h3 class="group">{html.escape(title)}</h3>{_list(items)}'
                   for title, items in section.groups)


def _html_reasons(title: str, reasons: list[str]) -> str:
    """A titled list of reasons; beyond SHOWN_REASONS the rest fold behind a click."""
    items = [f"<li>{html.escape(r)}</li>" for r in reasons]
    rest = items[SHOWN_REASONS:]
    more = (f'<details class="more"><summary>{len(rest)} more</summary><ul class="reasons">'
            + "".join(rest) + "</ul></details>") if rest else ""
    count = f"{len(reasons)} reason{'s' if len(reasons) != 1 else ''}"
    return (f'<p class="biggest">{severity_badge("high")} {html.escape(title)}, {count}:</p>'
            '<ul class="reasons">' + "".join(items[:SHOWN_REASONS])
            + f"</ul>{more}")


def _html_figure(figure: Figure) -> str:
    caption = (f"<figcaption>{html.escape(figure.caption)}</figcaption>"
               if figure.caption else "")
    return (f'<figure><img src="{figure.data_uri()}" alt="{html.escape(figure.alt)}" '
            f'data-file="{html.escape(figure.name)}">{caption}</figure>')


def html_section(section: Section) -> str:
    """One section as HTML: title, subtitle, verdict block, text, findings, figures, tables."""
    parts = [f'<section id="{html.escape(section.key)}"><h2>{html.escape(section.title)}</h2>']
    if section.subtitle:
        parts.append(f'<p class="subtitle">{html.escape(section.subtitle)}</p>')
    if section.view is not None:
        parts.append(overview_html(section.view))
    parts += [f"<p>{html.escape(p)}</p>" for p in section.paragraphs]
    if section.bullets is not None:
        parts.append(_html_findings(section))
    if section.reasons is not None:
        parts.append(_html_reasons(*section.reasons))
    parts += [f'<p class="note">{html.escape(n)}</p>' for n in section.notes]
    parts += [_html_figure(f) for f in section.figures]
    parts += [html_table(t) for t in section.tables]
    return "".join(parts) + "</section>"


def _toc(sections: list[Section]) -> str:
    links = "".join(f'<a href="#{html.escape(s.key)}">{html.escape(s.title)}</a>'
                    for s in sections[1:])
    return f'<nav class="toc">{links}</nav>'


def render_html(metrics: dict[str, Any], sections: list[Section]) -> str:
    """The whole self-contained page."""
    s = metrics.get("summary", {}) or {}
    title = f"llm2loss audit of {s.get('model') or 'a model'}@{s.get('version') or '?'}"
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
            f"<h1>{html.escape(title)}</h1>{_toc(sections)}"
            + "".join(html_section(sec) for sec in sections)
            + f'<p class="note">metrics schema version {fmt(metrics.get("schema_version"))}</p>'
            "</body></html>\n")


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


def _markdown_bullet(bullet: str) -> list[str]:
    """A finding as a Markdown list item with its verdict, severity and up to 6 examples."""
    tags = [t for t in (getattr(bullet, "verdict", None), getattr(bullet, "severity", None)) if t]
    prefix = "".join(f"**{md_escape(t)}** " for t in tags)
    lines = [f"- {prefix}{md_escape(bullet)}"]
    for e in getattr(bullet, "examples", ())[:6]:
        preview = str(e.get("preview") or "")
        shown = "(image)" if preview.startswith("data:image/") else _SPACE.sub(" ", preview)[:160]
        lines.append(f"  - {md_escape(e.get('side') or '')} `{md_escape(e.get('id'))}` "
                     f"(loss {md_escape(fmt(e.get('loss')))}): {md_escape(shown)}")
    return lines


def markdown_section(section: Section, *, with_figures: bool = True) -> str:
    """One section as Markdown, in the same order as the HTML."""
    lines = [f"## {md_escape(section.title)}", ""]
    if section.subtitle:
        lines += [f"*{md_escape(section.subtitle)}*", ""]
    if section.view is not None:
        lines.append(overview_markdown(section.view, md_escape))
    lines += [md_escape(p) + "\n" for p in section.paragraphs]
    if section.bullets is not None:
        groups = section.groups if section.groups is not None else [("", section.bullets)]
        for title, items in groups:
            if title:
                lines += [f"### {md_escape(title)}", ""]
            for bullet in items:
                lines += _markdown_bullet(bullet)
            lines.append("")
    if section.reasons is not None:
        title, reasons = section.reasons
        lines += [f"**{md_escape(title)}, {len(reasons)} reasons:**", "",
                  *[f"- {md_escape(r)}" for r in reasons], ""]
    lines += [md_escape(n) + "\n" for n in section.notes]
    if with_figures:
        for f in section.figures:
            lines.append(f"![{md_escape(f.alt)}]({f.name})\n")
            if f.caption:
                lines.append(f"*{md_escape(f.caption)}*\n")
    lines += [markdown_table(t) for t in section.tables]
    return "\n".join(lines)


def render_markdown(metrics: dict[str, Any], sections: list[Section]) -> str:
    """The whole report as Markdown; figures are linked as the PNG files next to it."""
    s = metrics.get("summary", {}) or {}
    title = f"llm2loss audit of {s.get('model') or 'a model'}@{s.get('version') or '?'}"
    return f"# {md_escape(title)}\n\n" + "\n".join(markdown_section(sec) for sec in sections)
