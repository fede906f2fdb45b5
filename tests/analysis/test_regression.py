"""Version against version (llm2loss.regression) on synthetic audits whose answers are planted.

A regression is stated only on a measured change; estimated phrase rises are predictions, listed
as such, and never make a release fail the gate.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
from synthetic_audit import FAILING, XSS, ConceptEncoder, make_data, run_analysis

from llm2loss.analysis import AnalysisResult
from llm2loss.config import AuditSettings, DiagnoserSettings
from llm2loss.diagnoser import LossDiagnoser
from llm2loss.errors import DataError
from llm2loss.gate import evaluate_gate, gate_lines
from llm2loss.regression import (compare_versions, measured_reasons, predictions,
                                 regression_phrases)

SMALL = AuditSettings(diagnosers=DiagnoserSettings(objectives=["rank"], archs=["linear"],
                                                   n_members=3), phrases=[XSS])


# --------------------------------------------------------------------------- versions


@pytest.fixture(scope="module")
def previous_version() -> AnalysisResult:
    """An earlier model that failed on other concepts: losses shuffled across samples."""
    data = make_data(seed=1)
    data["loss_train"] = np.random.default_rng(3).permutation(data["loss_train"])
    data["loss_test"] = np.random.default_rng(4).permutation(data["loss_test"])
    return run_analysis(settings=SMALL, **data)


def _compare(prev: AnalysisResult, cur: AnalysisResult) -> dict:
    phrases = regression_phrases(prev.metrics, cur.metrics)
    return compare_versions(prev_diagnosers=prev.diagnosers, prev_metrics=prev.metrics,
                            cur_diagnosers=cur.diagnosers, cur_metrics=cur.metrics,
                            phrase_embeddings=ConceptEncoder().encode_text(phrases),
                            phrases=phrases)


def test_regression_finds_the_concepts_that_got_worse(audit_result: AnalysisResult,
                                                     previous_version: AnalysisResult) -> None:
    report = _compare(previous_version, audit_result)
    assert report["diagnoser"] == "rank-linear"  # the primary rank-mlp is not in the earlier audit
    rose = {r["phrase"]: r for r in report["phrases_rose"]}
    for phrase in FAILING:
        assert rose[phrase]["change"] > 15 and rose[phrase]["p_rose"] >= 0.9
    # the planted concepts' estimated rises are predictions, named as such, never reasons
    assert any("mortgage" in p and "estimated, not measured" in p for p in report["predicted"])
    assert not any("mortgage" in reason for reason in report["reasons"])
    # the planted Money concept fails now: its measured gap became significant, a measured reason
    assert report["significant_regression"] is True
    assert all(r.startswith("measured ") for r in report["reasons"])
    assert any("'an email about money'" in r and "excluding 0" in r for r in report["reasons"])
    money = {r["attribute"]: r for r in report["attributes_estimated"]}["Money"]
    assert money["change"] > 0
    measured = {(r["attribute"], r["metric"]) for r in report["attributes_measured"]}
    assert ("Money", "error") in measured
    assert json.loads(json.dumps(report, allow_nan=False)) == report


def test_a_version_against_itself_is_no_regression(previous_version: AnalysisResult) -> None:
    same = previous_version
    report = _compare(same, same)
    assert report["significant_regression"] is False and report["reasons"] == []
    assert report["predicted"] == []
    assert not any(r["became_significant"] for r in report["pairs_measured"])
    assert all(abs(r["change"]) < 15 for r in report["phrases_rose"] + report["phrases_fell"])


def test_regression_without_a_common_diagnoser_or_with_bad_embeddings(
        audit_result: AnalysisResult) -> None:
    familiar_only = {"familiarity-mlp": audit_result.diagnosers["familiarity-mlp"]}
    report = compare_versions(prev_diagnosers=familiar_only, prev_metrics=audit_result.metrics,
                              cur_diagnosers=audit_result.diagnosers,
                              cur_metrics=audit_result.metrics,
                              phrase_embeddings=np.zeros((1, 32)), phrases=["x"])
    assert "share no loss diagnoser" in report["reason"]
    assert report["phrases_rose"] == [] and report["significant_regression"] is False
    with pytest.raises(DataError, match="2 rows for 1 phrases"):
        compare_versions(prev_diagnosers=audit_result.diagnosers, prev_metrics=audit_result.metrics,
                         cur_diagnosers=audit_result.diagnosers, cur_metrics=audit_result.metrics,
                         phrase_embeddings=np.ones((2, 32)), phrases=["x"])


def test_saved_diagnosers_reproduce_the_regression(audit_result: AnalysisResult,
                                                   previous_version: AnalysisResult,
                                                   tmp_path) -> None:
    """The pipeline compares versions with diagnosers loaded from the store: same answer."""
    prev = previous_version
    loaded = {}
    for name, diagnoser in prev.diagnosers.items():
        loaded[name] = LossDiagnoser.load(diagnoser.save(tmp_path / name))
    direct = _compare(prev, audit_result)
    reloaded = _compare(AnalysisResult(loaded, prev.metrics), audit_result)
    assert reloaded["phrases_rose"] == direct["phrases_rose"]


def _measured_as_before(prev: AnalysisResult, cur: AnalysisResult) -> AnalysisResult:
    """`cur` with the held-out measurements of `prev`: only the diagnosers' estimates differ."""
    metrics = copy.deepcopy(cur.metrics)
    for key in ("attributes", "comparisons", "data"):
        metrics[key] = copy.deepcopy(prev.metrics[key])
    return AnalysisResult(cur.diagnosers, metrics)


def test_estimated_rises_alone_are_predictions_and_do_not_fail_the_gate(
        audit_result: AnalysisResult, previous_version: AnalysisResult) -> None:
    report = _compare(previous_version, _measured_as_before(previous_version, audit_result))
    rose = {r["phrase"]: r for r in report["phrases_rose"]}
    assert all(rose[p]["change"] > 15 and rose[p]["p_rose"] >= 0.9 for p in FAILING)
    assert report["significant_regression"] is False and report["reasons"] == []
    assert len(report["predicted"]) >= len(FAILING)
    result = evaluate_gate({"model": "m", "version": "v2"}, report)
    assert result.passed and result.reasons == []
    assert any("not measured, so not a reason to fail" in note for note in result.notes)
    (line,) = gate_lines(result)
    assert line.startswith("PASS m@v2: no significant regression")
    assert f"{len(report['predicted'])} estimated rises are predictions, not measured" in line


def test_a_measured_rise_is_a_regression_and_fails_the_gate(
        audit_result: AnalysisResult, previous_version: AnalysisResult) -> None:
    cur = _measured_as_before(previous_version, audit_result)
    money = next(r for r in cur.metrics["attributes"]["rows"] if r["attribute"] == "Money")
    error = money["measured"]["error"]
    error["signed"] = (abs(error["signed"]) + 0.2) * (1 if error["signed"] >= 0 else -1)
    report = _compare(previous_version, cur)
    assert report["significant_regression"] is True
    (reason,) = report["reasons"]
    assert reason.startswith("measured error-rate disparity of attribute 'Money' grew")
    result = evaluate_gate({"model": "m", "version": "v2"}, report)
    assert not result.passed and result.reasons == [reason]


def test_a_pair_gap_that_became_significant_is_a_measured_regression(
        audit_result: AnalysisResult, previous_version: AnalysisResult) -> None:
    prev = AnalysisResult(previous_version.diagnosers, copy.deepcopy(previous_version.metrics))
    before = prev.metrics["comparisons"]["rows"][0]
    before.update(measured_diff=0.05, measured_low=-0.1, measured_high=0.2)  # includes 0
    cur = _measured_as_before(prev, audit_result)
    row = cur.metrics["comparisons"]["rows"][0]
    row.update(measured_diff=0.5, measured_low=0.2, measured_high=0.8)  # now excludes 0
    report = _compare(prev, cur)
    changed = [r for r in report["pairs_measured"] if r["became_significant"]]
    assert [(r["a"], r["b"]) for r in changed] == [(row["a"], row["b"])]
    assert report["significant_regression"] is True
    (reason,) = report["reasons"]
    assert reason.startswith(f"measured loss gap of {row['a']!r} minus {row['b']!r}")
    assert "[+0.200, +0.800] excluding 0" in reason
    same = _compare(prev, _measured_as_before(prev, audit_result))  # unchanged: not a regression
    assert same["reasons"] == [] and not any(r["became_significant"] for r in same["pairs_measured"])


def test_a_pair_gap_that_flipped_sides_is_a_regression_only_when_it_grew(
        audit_result: AnalysisResult, previous_version: AnalysisResult) -> None:
    """The demo's v1 -> v2: HTML mail measured +4.4 worse in v1 and 0.25 *better* in v2. Both
    intervals exclude 0, on opposite sides, and the disparity shrank: no regression. Flipped to
    a larger gap, it is one."""
    prev = AnalysisResult(previous_version.diagnosers, copy.deepcopy(previous_version.metrics))
    prev.metrics["comparisons"]["rows"][0].update(measured_diff=4.378, measured_low=2.639, measured_high=6.007)
    for now, regressed in (((-0.246, -0.342, -0.149), False), ((-6.0, -7.5, -4.5), True)):
        cur = _measured_as_before(prev, audit_result)
        row = cur.metrics["comparisons"]["rows"][0]
        row.update(measured_diff=now[0], measured_low=now[1], measured_high=now[2])
        report = _compare(prev, cur)
        (pair,) = [r for r in report["pairs_measured"] if (r["a"], r["b"]) == (row["a"], row["b"])]
        assert pair["became_significant"] is regressed
        assert report["significant_regression"] is regressed
        assert any(row["a"] in reason for reason in report["reasons"]) is regressed


def test_reports_written_before_the_measured_rule_are_read_alike() -> None:
    """A stored regression.json of the earlier rule listed estimated rises among its reasons."""
    estimated = "phrase 'x' rose 28.0 percentile points (P(rose) = 1.00)"
    measured = "measured error-rate disparity of attribute 'html' grew from +0.010 to +0.200"
    old = {"significant_regression": True, "reasons": [estimated],
           "previous": {"model": "m", "version": "v1"}}
    assert measured_reasons(old) == [] and predictions(old) == [estimated]
    assert evaluate_gate({"model": "m", "version": "v2"}, old).passed
    both = {**old, "reasons": [estimated, measured]}
    assert measured_reasons(both) == [measured]
    assert evaluate_gate({"model": "m", "version": "v2"}, both).reasons == [measured]


def test_versions_read_with_different_readouts_say_so(previous_version: AnalysisResult) -> None:
    """An audit saved before the linear readout against one read linearly and fitted longer: the
    estimated changes mix model and method, and the report and every estimated finding say so;
    the same method says nothing."""
    from llm2loss.report.findings import regression_findings

    data = make_data(seed=1)
    linear = LossDiagnoser("rank", "linear", n_members=3, text_readout="linear", max_epochs=90).fit(
        data["X_train"], data["loss_train"])
    previous = previous_version.diagnosers["rank-linear"]
    assert previous.text_readout_ == "heads" and previous.max_epochs != 90
    cur = AnalysisResult({**previous_version.diagnosers, "rank-linear": linear}, previous_version.metrics)
    report = _compare(previous_version, cur)
    assert report["text_readouts"] == {"previous": "heads", "current": "linear"}
    note = report["readout_note"]
    assert ("phrases scored with its MLP heads at each phrase's point before and with a linear fit "
            "of its scores over the data now") in note
    assert f"fits capped at {previous.max_epochs} epochs before and 90 now" in note
    findings = regression_findings(report)
    said = [f for f in findings if "change of method" in f]
    assert len(said) == 1 and said[0].startswith("Uncertain: the two versions' diagnosers")
    assert said[0].verdict == "uncertain"
    estimated = [f for f in findings if "estimated loss of" in f]
    assert estimated and all(f.startswith("Uncertain: ") and f.verdict == "uncertain" for f in estimated)
    same = _compare(previous_version, previous_version)
    assert same["text_readouts"] == {"previous": "heads", "current": "heads"} and "readout_note" not in same
    assert not any("change of method" in f for f in regression_findings(same))
