"""The trust benchmark end to end in its --quick mode (small slices of every data set, real
MiniLM, real SpamAssassin releases and BBC topic model), so it cannot silently break: the figures
table has a row per data set and method, its counts add up and its rates are in [0, 1]; plus the
scoring rules on hand-made claims and the BBC reader on the installed corpus.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import bbc_news  # noqa: E402
import bench_trust  # noqa: E402

from llm2loss import verdicts  # noqa: E402


def test_score_counts_wrong_stated_and_brier() -> None:
    a, b, u = verdicts.A_WORSE, verdicts.B_WORSE, verdicts.UNCERTAIN
    claims = [(a, 0.9, True), (a, 0.8, False), (b, 0.1, False), (u, 0.5, True)]
    s = bench_trust.score(claims)
    assert (s["significant"], s["stated"], s["wrong"]) == (4, 3, 1)
    assert s["confident_wrong"] == pytest.approx(1 / 3)
    assert s["coverage"] == pytest.approx(3 / 4)
    assert s["brier"] == pytest.approx(np.mean([0.01, 0.64, 0.01, 0.25]))
    empty = bench_trust.score([(u, 0.5, True)])
    assert empty["stated"] == 0 and empty["confident_wrong"] == 0.0


def test_today_rule_and_threshold_context() -> None:
    assert bench_trust.today_verdict({"p": 0.8}) == verdicts.A_WORSE
    assert bench_trust.today_verdict({"p": 0.2}) == verdicts.B_WORSE
    assert bench_trust.today_verdict({"p": 0.5}) == verdicts.UNCERTAIN
    before = verdicts.P_STATE
    with bench_trust.thresholds(P_STATE=1.0):
        assert verdicts.P_STATE == 1.0
    assert verdicts.P_STATE == before
    # P = 1/5 is "<= 1 - 0.8" although 1 - 0.8 is 0.1999... in floating point
    evidence = {"p": 0.2, "median_diff": -1.0, "differences": [-1.0, -1.0, -1.0, -1.0, 1.0],
                "gap": [-0.5, -0.7, -0.3, 20, 20], "separation": 0.9}
    with bench_trust.thresholds(P_STATE=0.8):
        assert bench_trust.rule_verdict(evidence) == verdicts.B_WORSE


def test_bbc_reader_reads_every_article_with_attributes() -> None:
    articles = bbc_news.read_articles()
    assert len(articles.ids) == 2225 and set(np.unique(articles.labels)) == set(range(5))
    attrs = bbc_news.structural_attributes(articles)
    assert set(attrs.columns) == set(bbc_news.ATTRIBUTE_PHRASES)
    assert 0.4 < attrs["long"].mean() < 0.6  # median split
    half = bbc_news.model_half(articles.ids)
    assert abs(int(half.sum()) - len(articles.ids) // 2) <= 1


def test_quick_run_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = tmp_path / "trust.json"
    assert bench_trust.main(["--quick", "--no-write", "--raw", str(raw)]) == 0
    out = capsys.readouterr().out
    assert out.count(bench_trust.SECTION) == 1
    results = json.loads(raw.read_text())["results"]
    assert {r["group"] for r in results} == set(bench_trust.GROUPS)
    rows = bench_trust.summarise(results)
    assert len(rows) == len(bench_trust.GROUPS) * len(bench_trust.METHODS)
    for row in rows:
        assert 0 <= row["wrong"] <= row["stated"] <= row["significant"]
        for rate in ("confident_wrong", "coverage"):
            assert 0.0 <= row[rate] <= 1.0
        assert np.isnan(row["brier"]) or 0.0 <= row["brier"] <= 1.0
        if row["method"] == "error-direction SVM":  # it states every significant pair
            assert row["stated"] == row["significant"]
    table = bench_trust.figures_table(rows)
    assert table[0].startswith("| data set | method | significant pairs | stated | wrong |")
    assert all(line in out for line in table)
    for r in results:
        assert set(r["variants"]) == set(bench_trust.VARIANTS)
        for variant in r["variants"].values():
            assert -1.0 <= variant["spearman"] <= 1.0
            assert {e["verdict"] for e in variant["pairs"]} <= set(verdicts.VERDICTS)
    # the section rebuilds from the raw evidence alone
    assert bench_trust.main(["--rerender", "--no-write", "--raw", str(raw)]) == 0
    assert "\n".join(table) in capsys.readouterr().out
