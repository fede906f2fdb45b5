"""Version against version (llm2loss.regression) on synthetic audits whose answers are planted."""

from __future__ import annotations

import json

import numpy as np
import pytest
from synthetic_audit import FAILING, XSS, ConceptEncoder, make_data, run_analysis

from llm2loss.analysis import AnalysisResult
from llm2loss.config import AuditSettings, DiagnoserSettings
from llm2loss.diagnoser import LossDiagnoser
from llm2loss.errors import DataError
from llm2loss.regression import compare_versions, regression_phrases

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
    assert report["significant_regression"] is True
    assert any("mortgage" in reason for reason in report["reasons"])
    money = {r["attribute"]: r for r in report["attributes_estimated"]}["Money"]
    assert money["change"] > 0
    measured = {(r["attribute"], r["metric"]) for r in report["attributes_measured"]}
    assert ("Money", "error") in measured
    assert json.loads(json.dumps(report, allow_nan=False)) == report


def test_a_version_against_itself_is_no_regression(previous_version: AnalysisResult) -> None:
    same = previous_version
    report = _compare(same, same)
    assert report["significant_regression"] is False and report["reasons"] == []
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
