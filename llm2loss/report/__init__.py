"""The report of one audit: self-contained HTML, Markdown, metrics.json and figure PNGs.

`render_report(metrics, out_dir, regression=None)` writes `index.html` (figures embedded as
base64 data URIs, inline CSS, nothing fetched: it opens offline), `report.md`, `metrics.json` and
one PNG per figure, and returns their paths. `headline_findings(metrics)` and
`regression_findings(regression)` give the findings as sentences (the CLI and the demo print
them); `prefect_artifact_payloads(...)` gives what the pipeline publishes as Prefect artifacts
(this package never imports prefect).

`metrics` is the dict of `llm2loss.analysis.analyse` (see `llm2loss.analysis.METRICS_SCHEMA`),
with `metrics["summary"]` filled by the pipeline. Summary keys (every one optional; a missing one
shows as "n/a"):

- model, version: the audited release.
- dataset, dataset_fingerprint: the dataset's name and content hash.
- encoder, encoder_fingerprint: the embedding encoder's spec string and weights hash.
- task: "multiclass" | "binary" | "regression" | "custom"; modality: "text" | "image".
- samples_used (int), samples_skipped (int), skipped_reasons: {reason: count}.
- split: {"train": int, "test": int} (falls back to metrics["split"], then metrics["data"]).
- stage_seconds: {stage name: seconds} in the order the stages ran.
- created_at: ISO time of the audit.

Every user string (phrases, names, reasons) is escaped in HTML and Markdown.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llm2loss.errors import DataError
from llm2loss.report import tables
from llm2loss.report.findings import headline_findings, is_uncertain, regression_findings
# The renderer (matplotlib: ~1 s to import) is imported where it renders, so reading findings
# (the CLI, queries) stays fast.

__all__ = [
    "headline_findings",
    "is_uncertain",
    "prefect_artifact_payloads",
    "regression_findings",
    "render_report",
]


def _check_metrics(metrics: Any) -> None:
    if not isinstance(metrics, dict) or "schema_version" not in metrics:
        raise DataError("metrics is not an analysis metrics dict (no 'schema_version'); pass the "
                        "metrics of llm2loss.analysis.analyse or a metrics.json it wrote")


def render_report(metrics: dict[str, Any], out_dir: Path, *,
                  regression: dict[str, Any] | None = None) -> list[Path]:
    """Write index.html, report.md, metrics.json and the figure PNGs into `out_dir`; return paths."""
    from llm2loss.report.render import build_sections, render_html, render_markdown

    _check_metrics(metrics)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sections = build_sections(metrics, regression)
    written = []
    for section in sections:
        for figure in section.figures:
            path = out / figure.name
            path.write_bytes(figure.png)
            written.append(path)
    pages = {"index.html": render_html(metrics, sections),
             "report.md": render_markdown(metrics, sections),
             "metrics.json": json.dumps(metrics, indent=2, allow_nan=False)}
    for name, text in pages.items():
        path = out / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def prefect_artifact_payloads(metrics: dict[str, Any], report_uri: str,
                              regression: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the pipeline publishes as Prefect artifacts for one audit.

    Returns {"markdown": verdict + findings + audit facts, "tables": {name: list of row dicts}, "link":
    report_uri, "regression_markdown": str or None}. Table names are artifact-key safe
    (lowercase letters and dashes).
    """
    from llm2loss.report.render import build_sections, markdown_section, md_escape

    _check_metrics(metrics)
    sections = {s.key: s for s in build_sections(metrics, regression, with_figures=False)}
    markdown = "\n".join(markdown_section(sections[key], with_figures=False)
                         for key in ("overview", "findings", "summary"))
    markdown += f"\n[Full report]({md_escape(report_uri)})\n"
    table_list = [tables.validity_table(metrics), tables.familiarity_table(metrics),
                  tables.failures_table(metrics), tables.comparisons_table(metrics),
                  tables.attributes_table(metrics), tables.attributes_predicted_table(metrics),
                  tables.agreement_table(metrics)]
    payload: dict[str, Any] = {
        "markdown": markdown,
        "tables": {t.key: t.records() for t in table_list},
        "link": report_uri,
        "regression_markdown": None,
    }
    if regression is not None:
        payload["regression_markdown"] = markdown_section(sections["regression"],
                                                          with_figures=False)
    return payload
