"""Tests of llm2loss.analysis on a synthetic audit whose answers are planted (synthetic_audit)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from synthetic_audit import (ATTRIBUTE_PHRASES, CONCEPTS, FAILING, XSS, make_data,
                             run_analysis)

from llm2loss.analysis import (METRICS_SCHEMA, SCHEMA_VERSION, AnalysisResult, gap_for, jsonable,
                               percentiles)
from llm2loss.config import AuditSettings, DiagnoserSettings
from llm2loss.errors import DataError

SMALL = AuditSettings(diagnosers=DiagnoserSettings(objectives=["rank"], archs=["linear"],
                                                   n_members=3), phrases=[XSS])


def test_metrics_are_strict_json_and_document_every_key(audit_result: AnalysisResult) -> None:
    metrics = audit_result.metrics
    assert json.loads(json.dumps(metrics, allow_nan=False)) == metrics
    assert metrics["schema_version"] == SCHEMA_VERSION
    assert set(metrics) <= set(METRICS_SCHEMA)
    assert sorted(audit_result.diagnosers) == ["familiarity-linear", "familiarity-mlp",
                                               "rank-linear", "rank-mlp", "regress-linear",
                                               "regress-mlp"]
    assert metrics["primary"] == {"loss": "rank-mlp", "familiarity": "familiarity-mlp"}
    assert metrics["data"]["gap"] == "none" and metrics["data"]["n_test"] == 150


def test_validity_finds_the_planted_loss(audit_result: AnalysisResult) -> None:
    rows = {r["diagnoser"]: r for r in audit_result.metrics["validity"]}
    assert set(rows) == {"rank-linear", "rank-mlp", "regress-linear", "regress-mlp"}
    for row in rows.values():
        assert row["ensemble_mean"]["spearman"]["r"] > 0.3
        assert row["ensemble_mean"]["spearman"]["p"] < 1e-3
        assert row["ensemble_median"]["kendall"]["r"] > 0.2
        assert 0 <= row["members"]["pearson"]["std"] < 0.3


def test_highest_loss_phrases_are_the_planted_concepts(audit_result: AnalysisResult) -> None:
    discovery = audit_result.metrics["discovery"]
    top_concepts = [r["phrase"] for r in discovery["highest_loss"] if r["phrase"] in CONCEPTS]
    assert set(top_concepts[:2]) == FAILING
    for row in discovery["highest_loss"][:2]:
        assert row["percentile"] > 80 and row["p_above_median"] == 1.0
    estimates = {r["phrase"]: r for r in audit_result.metrics["estimates"]["rows"]}
    assert set(CONCEPTS) | {XSS} <= set(estimates)
    failing = min(estimates[c]["percentile"] for c in FAILING)
    assert all(estimates[c]["percentile"] < failing - 15 for c in CONCEPTS if c not in FAILING)


def test_familiarity_separates_in_domain_from_out_of_domain(audit_result: AnalysisResult) -> None:
    fam = audit_result.metrics["familiarity"]
    assert fam["available"] and {r["diagnoser"] for r in fam["auroc"]} == {
        "familiarity-linear", "familiarity-mlp"}
    assert all(r["auroc"] > 0.75 and r["out_of_domain"] == "text_ood" for r in fam["auroc"])
    probes = {r["phrase"]: r for r in fam["probes"]}
    assert {r["domain"] for r in fam["probes"]} == {"in-domain", "out-of-domain"}
    # The XSS phrase points nowhere near the data: least familiar, and logit < 0 <-> prob < 0.5.
    assert audit_result.metrics["discovery"]["least_familiar"][0]["phrase"] == XSS
    assert probes[XSS]["logit"] < 0 and probes[XSS]["probability"] < 0.5
    assert probes[CONCEPTS[0]]["logit"] > 0 and probes[CONCEPTS[0]]["probability"] > 0.5


def test_attributes_measured_and_predicted_agree(audit_result: AnalysisResult) -> None:
    att = audit_result.metrics["attributes"]
    rows = {r["attribute"]: r for r in att["rows"]}
    assert set(rows) == set(ATTRIBUTE_PHRASES)
    assert att["skipped"] == [{"attribute": "Unpaired",
                               "reason": "no phrase pair; set dataset.attribute_phrases for it"}]
    money = rows["Money"]
    assert money["measured"]["loss"]["signed"] > 1.0
    assert money["measured"]["loss"]["absolute"] == pytest.approx(money["measured"]["loss"]["signed"])
    assert money["measured"]["error"]["signed"] > 0.2
    for name, pred in money["predicted"].items():
        assert pred["signed"] > 0 and pred["p_attr_worse"] == 1.0, name
    agreement = {(a["diagnoser"], a["metric"]): a for a in att["agreement"]}
    assert set(agreement) == {(d, m) for d in ("rank-linear", "rank-mlp", "regress-linear",
                                               "regress-mlp") for m in ("loss", "error")}
    assert agreement[("rank-mlp", "loss")]["sign_accuracy"] >= 0.75


def test_comparisons_keep_member_differences(audit_result: AnalysisResult) -> None:
    rows = audit_result.metrics["comparisons"]["rows"]
    assert len(rows) == 2 + len(ATTRIBUTE_PHRASES)
    first = rows[0]
    assert (first["a"], first["b"], first["source"]) == (CONCEPTS[0], CONCEPTS[5], "configured")
    assert len(first["differences"]) == 3 == len(first["percentile_differences"])
    assert first["p_a_worse"] == np.mean(np.array(first["differences"]) > 0) == 1.0
    assert first["quartiles"][2] == pytest.approx(np.median(first["differences"]))
    assert first["percentile_quartiles"][2] == pytest.approx(np.median(first["percentile_differences"]))


def test_image_modality_centres_the_gap() -> None:
    result = run_analysis(settings=SMALL, modality="image")
    assert result.metrics["data"]["gap"] == "center"
    assert result.diagnosers["rank-linear"].gap == "center"
    assert gap_for("text") == "none"
    with pytest.raises(ValueError, match="text, image"):
        gap_for("audio")


def test_celeba_style_minus_one_one_attributes_are_read() -> None:
    data = make_data()
    data["attributes_test"] = data["attributes_test"].astype(int) * 2 - 1
    result = run_analysis(settings=SMALL, **data)
    money = {r["attribute"]: r for r in result.metrics["attributes"]["rows"]}["Money"]
    assert money["measured"]["loss"]["signed"] > 1.0


def test_no_correctness_and_no_attributes() -> None:
    data = make_data()
    data["correct_test"] = None
    data["attributes_test"] = data["attributes_test"].iloc[:, :0]
    metrics = run_analysis(settings=SMALL, **data).metrics
    assert metrics["data"]["test_error_rate"] is None
    assert metrics["attributes"]["available"] is False
    assert "no attribute columns" in metrics["attributes"]["reason"]


@pytest.mark.parametrize("field, value, match", [
    ("loss_test", np.ones(10), "loss_test has 10 values"),
    ("correct_test", np.ones(7, dtype=bool), "correct_test has 7 values"),
    ("X_test", np.ones((2, 32)), "at least 3"),
])
def test_misaligned_held_out_data_is_rejected(field: str, value: object, match: str) -> None:
    data = make_data()
    data[field] = value
    with pytest.raises(DataError, match=match):
        run_analysis(settings=SMALL, **data)


def test_misaligned_attributes_and_blank_phrases_are_rejected() -> None:
    data = make_data()
    data["attributes_test"] = data["attributes_test"].iloc[:5]
    with pytest.raises(DataError, match="attributes_test has 5 rows"):
        run_analysis(settings=SMALL, **data)
    blank = SMALL.model_copy(update={"phrases": ["  "]})
    with pytest.raises(DataError, match="empty phrase"):
        run_analysis(settings=blank)


def test_percentiles_and_jsonable() -> None:
    quantiles = np.array([np.linspace(0, 1, 101), np.linspace(0, 10, 101)])
    pct = percentiles(np.array([[0.5, 2.0], [5.0, -1.0]]), quantiles)
    assert pct.tolist() == [[50.0, 100.0], [50.0, 0.0]]
    assert jsonable({"a": np.float32(np.nan), "b": (np.int64(2), np.bool_(True))}) == {
        "a": None, "b": [2, True]}

