"""The report reads like a verdict: the first screen states the release, its held-out metrics and
their change with a severity; stated findings come before uncertain ones; headings are plain;
every table scrolls in its box; figures say when an axis is zoomed or on a log scale."""

from __future__ import annotations

import copy
import html
import re
from pathlib import Path

import pytest
from report_page import ReportParser
from synthetic_audit import RenderedReport

from llm2loss.report import headline_findings, regression_findings, render_report
from llm2loss.report.figures import (attributes_caption, attributes_figure, failures_caption,
                                     failures_figure, symlog_threshold, wrap_label)
from llm2loss.report.render import CSS
from llm2loss.report.tables import fmt


def _parse(out_dir: Path) -> tuple[str, ReportParser]:
    text = (out_dir / "index.html").read_text(encoding="utf-8")
    parser = ReportParser()
    parser.feed(text)
    return text, parser


@pytest.fixture(scope="module")
def page(rendered: RenderedReport) -> tuple[str, ReportParser]:
    return _parse(rendered.out_dir)


def _texts(parser: ReportParser, section: str, tag: str) -> list[str]:
    return [text for t, s, text in parser.headings if s == section and t == tag]


def test_first_screen_states_the_change_with_its_severity(rendered: RenderedReport,
                                                          page: tuple[str, ReportParser]) -> None:
    text, parser = page
    assert parser.sections[0] == "overview"
    status = _texts(parser, "overview", "p.status")
    # the synthetic regression's 2 reasons are measured (attribute pairs' measured gaps became
    # significant): a high, measured regression; its 5 estimated rises are not counted
    assert all(r.startswith("measured ") for r in rendered.regression["reasons"])
    assert len(rendered.regression["predicted"]) == 5
    assert status == ["high Significant regression against spam-filter@v1, measured (2 reasons, "
                      "listed under What changed)."]
    header, *rows = parser.tables["overall-change"]
    assert header == ["Change since spam-filter@v1", "Previous", "Current", "Ratio", "Severity"]
    said = {f.text.split(" rose ")[0].split(" fell ")[0]: f for f in
            regression_findings(rendered.regression)[:2]}
    overall = rendered.regression["overall"]
    for row, key in zip(rows, ("test_error_rate", "test_loss_mean")):
        before, after = overall[key]["previous"], overall[key]["current"]
        assert row[1:3] == [fmt(before), fmt(after)]
        ratio = after / before
        assert row[3] == (f"x{ratio:.1f}" if ratio >= 1 else f"x{ratio:.2f}")
        finding = said[f"The {row[0].lower()}"]
        assert row[4] == (finding.severity or "low")
    # the synthetic v2's error rate rose a little (medium), its mean loss fell (low)
    assert [r[4] for r in rows] == ["medium", "low"]
    biggest = _texts(parser, "overview", "p.biggest")
    assert biggest == [f"Biggest change: {regression_findings(rendered.regression)[0].text}"]
    # the verdict block, the change table and the model name come before any other section
    assert text.index('id="verdict"') < text.index('id="table-overall-change"') < \
        text.index('<section id="findings"')


def test_stated_findings_come_before_uncertain_ones(rendered: RenderedReport,
                                                    page: tuple[str, ReportParser]) -> None:
    text, parser = page
    findings = headline_findings(rendered.metrics)
    stated = [f for f in findings if f.verdict not in (None, "uncertain")]
    uncertain = [f for f in findings if f.verdict == "uncertain"]
    assert stated and uncertain  # the synthetic audit has both
    start = text.index('<section id="findings"')
    last_stated = max(text.index(html.escape(f), start) for f in stated)
    first_uncertain = min(text.index(html.escape(f), start) for f in uncertain)
    assert last_stated < first_uncertain
    groups = _texts(parser, "findings", "h3")
    assert groups[0] == "Stated: backed by the held-out samples"
    assert groups[-1] == "Uncertain: not stated, with the reason"
    # each stated finding keeps its verdict badge and its examples
    section = text[start:text.index("</section>", start)]
    assert section.count('<span class="verdict stated">') == len(stated)
    assert section.count('<details class="examples">') == sum(bool(f.examples) for f in findings)


def test_headings_are_plain_and_the_paper_is_a_subtitle(page: tuple[str, ReportParser]) -> None:
    _, parser = page
    headings = [t for tag, _, t in parser.headings if tag in ("h2", "h3")]
    assert headings and not [h for h in headings if re.search(r"\b(Table|Figure)s? \d", h)]
    assert _texts(parser, "validity", "h2") == ["How well the diagnosers order samples"]
    assert _texts(parser, "validity", "p.subtitle") == ["Table 2 of the paper"]
    assert _texts(parser, "comparisons", "p.subtitle") == ["Figure 3 of the paper"]
    assert _texts(parser, "attributes", "p.subtitle") == ["Tables 3-5 of the paper"]
    assert parser.sections[-1] == "summary"


def test_every_table_scrolls_inside_its_box(page: tuple[str, ReportParser]) -> None:
    _, parser = page
    assert len(parser.tables) > 10
    assert {key: cls for key, cls in parser.table_parents.items() if cls != "scroll"} == {}
    assert ".scroll{overflow-x:auto" in CSS
    # the attribute table is split: measured side and predicted side, each under 15 columns
    assert max(len(parser.tables[k][0]) for k in ("attributes", "attributes-predicted")) < 15


def test_regression_reasons_are_a_list_not_a_sentence(rendered: RenderedReport,
                                                      page: tuple[str, ReportParser]) -> None:
    text, parser = page
    reasons = rendered.regression["reasons"]
    assert len(reasons) > 1 and parser.items["reasons"] == reasons
    assert "; ".join(html.escape(r) for r in reasons) not in text
    assert parser.sections.index("regression") == 2


def test_a_first_version_and_a_clean_version(rendered: RenderedReport, tmp_path: Path) -> None:
    render_report(rendered.metrics, tmp_path / "first")
    text, parser = _parse(tmp_path / "first")
    assert _texts(parser, "overview", "p.status") == [
        "baseline First audited version: no previous version to compare against."]
    assert "overall-change" not in parser.tables and "regression" not in parser.sections
    cards = [t for t in parser.tags if t == "div"]
    assert cards and f'<div class="value">{fmt(rendered.metrics["data"]["test_error_rate"])}' in text
    clean = copy.deepcopy(rendered.regression)
    clean.update(significant_regression=False, reasons=[], predicted=[])
    render_report(rendered.metrics, tmp_path / "clean", regression=clean)
    text, parser = _parse(tmp_path / "clean")
    assert _texts(parser, "overview", "p.status") == [
        "low No significant regression against spam-filter@v1."]
    assert "reasons" not in parser.items
    assert html.escape(regression_findings(clean)[-1]) in text


def test_markdown_follows_the_same_order(rendered: RenderedReport) -> None:
    markdown = (rendered.out_dir / "report.md").read_text(encoding="utf-8")
    order = ["## Verdict", "| Held-out error rate |", "## What to check next",
             "## What changed since v1", "## How well the diagnosers order samples",
             "## Audit facts"]
    positions = [markdown.index(heading) for heading in order]
    assert positions == sorted(positions)
    assert "*Table 2 of the paper*" in markdown


def test_attribute_outliers_switch_the_axis_to_symlog(rendered: RenderedReport) -> None:
    metrics = copy.deepcopy(rendered.metrics)
    assert "symmetric log" not in attributes_caption(metrics)
    rows = metrics["attributes"]["rows"]
    extra = copy.deepcopy(rows[0])
    extra.update(attribute="outlier")
    extra["measured"]["loss"]["signed"] = 100 * max(abs(r["measured"]["loss"]["signed"])
                                                    for r in rows)
    rows.append(extra)
    caption = attributes_caption(metrics)
    assert "The left axis is on a symmetric log scale" in caption
    assert "right axis" not in caption
    assert attributes_figure(metrics)[:8] == b"\x89PNG\r\n\x1a\n"
    assert symlog_threshold([1.0, -1.0, 1.5, 2.0]) is None
    assert symlog_threshold([1.0, -1.0, 1.5, 200.0]) == pytest.approx(1.25)


def test_failures_axis_zooms_and_says_so(rendered: RenderedReport) -> None:
    metrics = copy.deepcopy(rendered.metrics)
    for i, row in enumerate(metrics["discovery"]["highest_loss"]):
        row.update(percentile=99.0 - 0.1 * i, percentile_std=0.3)
        row.pop("measured", None)
    assert "The axis starts at percentile 90, not 0" in failures_caption(metrics)
    assert failures_figure(metrics)[:8] == b"\x89PNG\r\n\x1a\n"
    for row in metrics["discovery"]["highest_loss"]:
        row.update(percentile=20.0)
    assert "starts at" not in failures_caption(metrics)


def test_long_phrases_wrap_instead_of_being_cut() -> None:
    phrase = "a mailing list discussion about the Perl programming language"
    wrapped = wrap_label(phrase)
    assert wrapped.replace("\n", " ") == phrase and all(len(x) <= 40 for x in wrapped.split("\n"))
    long = wrap_label("word " * 40)
    assert long.count("\n") == 1 and long.endswith("…")
    assert wrap_label("costs $5") == r"costs \$5"


def test_the_verdict_block_escapes_what_it_shows(rendered: RenderedReport) -> None:
    from llm2loss.report.overview import overview, overview_html, overview_markdown
    from llm2loss.report.render import md_escape

    xss = "<script>alert(1)</script>"
    regression = copy.deepcopy(rendered.regression)
    regression["previous"] = {"model": xss, "version": "<b>v1</b>"}
    regression["phrases_rose"][0].update(phrase=xss, change=1e6)
    metrics = copy.deepcopy(rendered.metrics)
    metrics["summary"]["model"] = xss
    view = overview(metrics, regression, headline_findings(metrics))
    block = overview_html(view)
    assert "<script" not in block and "<b>" not in block
    assert "&lt;script&gt;alert(1)&lt;/script&gt;@&lt;b&gt;v1&lt;/b&gt;" in block
    assert f"Largest estimated phrase rise (a prediction, not measured): &#x27;{html.escape(xss, quote=False)}&#x27;" in block
    markdown = overview_markdown(view, md_escape)
    assert "<script" not in markdown and "&lt;script&gt;" in markdown


def test_only_a_measured_reason_makes_the_regression_high(rendered: RenderedReport) -> None:
    from llm2loss.report.overview import _status, overview

    estimated_only = {**rendered.regression, "significant_regression": False, "reasons": []}
    view = overview(rendered.metrics, estimated_only, [])
    assert (view.regressed, view.reasons, view.predicted) == (False, 0, 5)
    assert _status(view) == ("medium", "No measured regression against spam-filter@v1; 5 estimated "
                             "rises crossed the rule (predictions, listed under What changed), so "
                             "the change is uncertain.")
    measured = {**estimated_only, "significant_regression": True,
                "reasons": ["measured error-rate disparity of attribute 'x' grew from +0.010 to "
                            "+0.200"]}
    view = overview(rendered.metrics, measured, [])
    assert (view.regressed, view.reasons, view.predicted) == (True, 1, 5)
    label, sentence = _status(view)
    assert label == "high" and sentence.startswith("Significant regression against")
