"""Tests of llm2loss.report on a real synthetic audit: sections, numbers, escaping, images."""

from __future__ import annotations

import base64
import copy
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from report_page import ReportParser
from synthetic_audit import RenderedReport as Rendered

from llm2loss.errors import DataError
from llm2loss.report import (headline_findings, is_uncertain, prefect_artifact_payloads,
                             regression_findings, render_report)
from llm2loss.report.figures import label
from llm2loss.report.render import md_escape
from llm2loss.report.tables import fmt

XSS = "<script>alert(1)</script>"
#: Reading order: the verdict and what to check first, the regression near the top, the evidence,
#: the audit facts (fingerprints, stage times) last.
SECTIONS = ["overview", "findings", "regression", "validity", "familiarity", "discovery",
            "attributes", "comparisons", "summary"]


@pytest.fixture(scope="module")
def page(rendered: Rendered) -> tuple[str, ReportParser]:
    html_text = (rendered.out_dir / "index.html").read_text(encoding="utf-8")
    parser = ReportParser()
    parser.feed(html_text)
    return html_text, parser


def _rows(parser: ReportParser, key: str) -> list[dict[str, str]]:
    header, *rows = parser.tables[key]
    return [dict(zip(header, row)) for row in rows]


def _close(cell: str, value: float) -> bool:
    """A cell shows `value`: its first number equals value to the shown precision."""
    shown = float(cell.split(" ± ")[0])
    return cell.split(" ± ")[0] == fmt(value) and abs(shown - value) <= 5e-4 + 1e-2 * abs(value)


def test_files_written_and_metrics_json_round_trips(rendered: Rendered) -> None:
    names = sorted(p.name for p in rendered.files)
    assert names == ["attributes.png", "comparisons.png", "failures.png", "familiarity.png",
                     "index.html", "metrics.json", "regression.png", "report.md"]
    assert all(p.is_file() and p.stat().st_size > 0 for p in rendered.files)
    assert json.loads((rendered.out_dir / "metrics.json").read_text()) == rendered.metrics


def test_every_section_in_order(page: tuple[str, ReportParser]) -> None:
    _, parser = page
    assert parser.sections == SECTIONS


def test_summary_table_shows_the_pipeline_summary(page: tuple[str, ReportParser]) -> None:
    _, parser = page
    summary = {row["Field"]: row["Value"] for row in _rows(parser, "summary")}
    assert summary["Model"] == "spam-filter" and summary["Version"] == "v2"
    assert summary["Dataset fingerprint"] == "sha256:abc123"
    assert summary["Samples skipped"] == "2"
    assert summary["Skip reasons"] == "<b>unreadable</b> file: 2"  # shown as text, not markup
    assert summary["Train samples"] == "350" and summary["Test samples"] == "150"
    assert summary["Stage times"] == "embed 1.500 s; losses 0.250 s"


def test_validity_numbers_match_metrics(rendered: Rendered, page: tuple[str, ReportParser]) -> None:
    _, parser = page
    rows = _rows(parser, "validity")
    for entry in rendered.metrics["validity"]:
        mine = {r["Aggregation"]: r for r in rows if r["Diagnoser"] == entry["diagnoser"]}
        for corr, title in (("pearson", "Pearson"), ("spearman", "Spearman"), ("kendall", "Kendall")):
            assert _close(mine["ensemble mean"][f"{title} r"], entry["ensemble_mean"][corr]["r"])
            assert _close(mine["ensemble mean"][f"{title} p"], entry["ensemble_mean"][corr]["p"])
            assert _close(mine["ensemble median"][f"{title} r"], entry["ensemble_median"][corr]["r"])
            members = mine["members (mean ± std, median p)"][f"{title} r"]
            assert _close(members, entry["members"][corr]["mean"])
            assert members.split(" ± ")[1] == fmt(entry["members"][corr]["std"])


def test_familiarity_attribute_and_comparison_numbers_match(
        rendered: Rendered, page: tuple[str, ReportParser]) -> None:
    _, parser = page
    metrics = rendered.metrics
    auroc = _rows(parser, "familiarity")
    assert len(auroc) == len(metrics["familiarity"]["auroc"]) == 1
    assert _close(auroc[0]["AUROC"], metrics["familiarity"]["auroc"][0]["auroc"])
    probes = {r["Phrase"]: r for r in _rows(parser, "probes")}
    for probe in metrics["familiarity"]["probes"]:
        assert _close(probes[probe["phrase"]]["Logit (before sigmoid)"], probe["logit"])
        assert _close(probes[probe["phrase"]]["Probability (after sigmoid)"], probe["probability"])
    attributes = {r["Attribute"]: r for r in _rows(parser, "attributes")}
    for r in _rows(parser, "attributes-predicted"):
        attributes[r["Attribute"]].update(r)
    for row in metrics["attributes"]["rows"]:
        shown = attributes[row["attribute"]]
        assert _close(shown["Measured loss (signed)"], row["measured"]["loss"]["signed"])
        assert _close(shown["Measured error (abs)"], row["measured"]["error"]["absolute"])
        assert _close(shown["Predicted rank-mlp (signed)"], row["predicted"]["rank-mlp"]["signed"])
    comparisons = _rows(parser, "comparisons")
    for shown, row in zip(comparisons, metrics["comparisons"]["rows"]):
        assert (shown["Phrase a"], shown["Phrase b"]) == (row["a"], row["b"])
        assert _close(shown["P(a worse than b)"], row["p_a_worse"])
        assert _close(shown["Median diff"], row["quartiles"][2])
    rose = _rows(parser, "phrases-rose")
    assert [r["Phrase"] for r in rose] == [r["phrase"] for r in rendered.regression["phrases_rose"]]
    assert _close(rose[0]["Median change"], rendered.regression["phrases_rose"][0]["change"])


def test_findings_are_in_the_page(rendered: Rendered, page: tuple[str, ReportParser]) -> None:
    html_text, _ = page
    import html as html_module

    said = regression_findings(rendered.regression)
    assert said[-1].startswith("Significant regression (measured): ")
    # estimated rises are one Uncertain finding that says they are predictions, not reasons
    (predicted,) = [f for f in said if f.startswith("Uncertain: predicted, not measured: ")]
    assert predicted.verdict == "uncertain"
    assert all(p in predicted for p in rendered.regression["predicted"])
    assert not any(p in said[-1] for p in rendered.regression["predicted"])
    # a phrase's estimated change between versions is a prediction, never a stated finding
    changes = [f for f in said if "he estimated loss of" in f]
    assert changes and all(f.verdict != "stated" and "not measured" in f for f in changes)
    for sentence in headline_findings(rendered.metrics) + said[:-1]:
        assert html_module.escape(sentence) in html_text
    # the rule's verdict is shown as a list: every reason is its own item, none is left out
    _, parser = page
    assert parser.items["reasons"] == rendered.regression["reasons"]
    assert any(t.endswith("Significant regression, 2 reasons:") for _, _, t in parser.headings)


def test_user_html_is_escaped_everywhere(rendered: Rendered, page: tuple[str, ReportParser]) -> None:
    html_text, parser = page
    assert XSS in json.dumps(rendered.metrics)  # the phrase really is in the audit
    assert "<script" not in html_text.lower() and "script" not in parser.tags
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html_text
    assert "<b>" not in html_text
    markdown = (rendered.out_dir / "report.md").read_text(encoding="utf-8")
    assert "<script" not in markdown.lower() and "&lt;script&gt;alert(1)&lt;/script&gt;" in markdown


def test_page_is_self_contained_and_images_decode(page: tuple[str, ReportParser]) -> None:
    html_text, parser = page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html_text)
    assert "@import" not in html_text and "<link" not in html_text
    assert len(parser.images) == 5
    for src in parser.images:
        prefix = "data:image/png;base64,"
        assert src.startswith(prefix)
        image = Image.open(io.BytesIO(base64.b64decode(src[len(prefix):]))).convert("L")
        assert image.width >= 300 and image.height >= 200
        assert np.asarray(image, dtype=float).std() > 10  # not a blank canvas


def test_optional_sections_are_left_out(rendered: Rendered, tmp_path: Path) -> None:
    metrics = copy.deepcopy(rendered.metrics)
    metrics["attributes"] = {"available": False, "reason": "the dataset has no attribute columns"}
    render_report(metrics, tmp_path)
    parser = ReportParser()
    parser.feed((tmp_path / "index.html").read_text(encoding="utf-8"))
    assert parser.sections == [s for s in SECTIONS if s not in ("attributes", "regression")]
    assert not (tmp_path / "regression.png").exists()


def test_uncertain_findings_are_labelled(rendered: Rendered) -> None:
    metrics = copy.deepcopy(rendered.metrics)
    row = max(metrics["comparisons"]["rows"], key=lambda r: abs(r["percentile_quartiles"][2]))
    row.update(p_a_worse=0.6, verdict="a worse", reason=None, measured_diff=0.5,
               measured_low=0.1, measured_high=0.9)
    sentence = next(s for s in headline_findings(metrics) if f"'{row['a']}' fails more" in s)
    # a stated verdict whose own P does not back it (a tampered metrics.json) is not stated
    assert sentence.startswith("Uncertain") and "P(a worse) = 0.60" in sentence
    assert sentence.count("0.60") == 1  # P is said once, in the reason
    assert sentence.verdict == "uncertain" and "members disagree" in sentence.reason
    row.update(p_a_worse=0.05, verdict="b worse", measured_diff=-0.5, measured_low=-0.9,
               measured_high=-0.1)
    sentence = next(s for s in headline_findings(metrics) if f"'{row['b']}' fails more" in s)
    assert "P = 0.95" in sentence and not sentence.startswith("Uncertain")
    assert sentence.verdict == "b worse" and sentence.examples
    row.update(verdict="b worse", measured_diff=0.5)  # measurement points the other way
    sentence = next(s for s in headline_findings(metrics) if f"'{row['a']}' fails more" in s)
    assert sentence.startswith("Uncertain") and "same way" in sentence.reason
    assert [is_uncertain(p) for p in (0.19, 0.2, 0.5, 0.8, 0.81, None)] == [
        False, True, True, True, False, True]


def test_weak_validity_gets_a_caution(rendered: Rendered) -> None:
    metrics = copy.deepcopy(rendered.metrics)
    entry = next(r for r in metrics["validity"] if r["diagnoser"] == metrics["primary"]["loss"])
    entry["ensemble_mean"]["spearman"] = {"r": 0.03, "p": 0.6}
    assert headline_findings(metrics)[0].startswith("Caution:")
    assert not headline_findings(rendered.metrics)[0].startswith("Caution:")


def test_prefect_payloads(rendered: Rendered) -> None:
    payload = prefect_artifact_payloads(rendered.metrics, "file:///store/report/index.html",
                                        rendered.regression)
    assert "## Verdict" in payload["markdown"] and "## What to check next" in payload["markdown"]
    assert payload["markdown"].index("## Verdict") < payload["markdown"].index("## Audit facts")
    assert "(file:///store/report/index.html)" in payload["markdown"]
    assert "<script" not in payload["markdown"]
    assert payload["link"] == "file:///store/report/index.html"
    assert set(payload["tables"]) == {"validity", "familiarity", "top-failures", "comparisons",
                                      "attributes", "attributes-predicted", "agreement"}
    assert all(re.fullmatch(r"[a-z-]+", name) for name in payload["tables"])
    first = payload["tables"]["validity"][1]
    assert first["Spearman r"] == rendered.metrics["validity"][0]["ensemble_mean"]["spearman"]["r"]
    json.dumps(payload, allow_nan=False)
    assert "Significant regression" in payload["regression_markdown"]
    assert prefect_artifact_payloads(rendered.metrics, "x")["regression_markdown"] is None


def test_bad_metrics_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="schema_version"):
        render_report({"validity": []}, tmp_path)
    with pytest.raises(DataError, match="analyse"):
        prefect_artifact_payloads([], "x")  # type: ignore[arg-type]


def test_escaping_helpers() -> None:
    assert md_escape("a|b *c* <i>") == r"a\|b \*c\* &lt;i&gt;"
    assert label("costs $5 and $6") == r"costs \$5 and \$6"
    assert len(label("x" * 200)) == 48


@pytest.mark.parametrize("objective, first_finding", [
    ("familiarity", "No loss diagnoser was fitted"),
    ("regress", "The regress-linear diagnoser orders held-out samples"),
])
def test_reports_of_single_objective_audits(objective: str, first_finding: str,
                                            tmp_path: Path) -> None:
    from synthetic_audit import CONCEPTS, run_analysis

    from llm2loss.config import AuditSettings, DiagnoserSettings

    settings = AuditSettings(diagnosers=DiagnoserSettings(objectives=[objective], archs=["linear"],
                                                          n_members=2))
    metrics = run_analysis(settings=settings, vocabularies={"my_topics": CONCEPTS}).metrics
    render_report(metrics, tmp_path)
    parser = ReportParser()
    parser.feed((tmp_path / "index.html").read_text(encoding="utf-8"))
    assert headline_findings(metrics)[0].startswith(first_finding)
    assert parser.sections[:5] == [s for s in SECTIONS if s != "regression"][:5]
    familiarity = "Not computed: no familiarity diagnoser was configured."
    assert (familiarity in (tmp_path / "report.md").read_text()) == (objective != "familiarity")


def test_examples_behind_findings_are_escaped(rendered: Rendered, tmp_path: Path) -> None:
    metrics = copy.deepcopy(rendered.metrics)
    row = metrics["comparisons"]["rows"][0]
    thumb = "data:image/png;base64,iVBORw0KGgo="
    row["examples_a"] = [{"id": XSS, "preview": XSS, "loss": 1.0, "side": "a"},
                         {"id": "img", "preview": thumb, "loss": 2.0, "side": "a"},
                         {"id": "fake", "preview": 'data:image/png;base64,AA" onerror="alert(1)',
                          "loss": 3.0, "side": "a"}]
    render_report(metrics, tmp_path)
    page = (tmp_path / "index.html").read_text(encoding="utf-8")
    parser = ReportParser()
    parser.feed(page)
    assert XSS not in page and "&lt;script&gt;" in page
    assert thumb in parser.images  # a real base64 PNG thumbnail is shown as an image
    assert not any("onerror" in src for src in parser.images)  # anything else stays text
    assert "script" not in parser.tags
    examples = [rows for key, rows in parser.tables.items() if "examples" in key]
    assert examples and any(XSS in cell for rows in examples for r in rows for cell in r)
    markdown = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "<script>" not in markdown and "(image)" in markdown
