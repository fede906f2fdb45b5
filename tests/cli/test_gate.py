"""`llm2loss gate` and its rule (llm2loss.gate): exit 1 with one line per reason, else exit 0.

Only measured changes fail a release; estimated phrase rises are predictions, named in a note.
The rule is checked on the regression reports an audit writes (the keys of
`llm2loss.regression.compare_versions`); the command on a folder store holding a finished audit's
manifest and regression.json, written the way the pipeline writes them. The gate against real
audits is in test_cli_audited.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import assert_one_line_error

from llm2loss import registry
from llm2loss.config import DatasetSpec, ReleaseSpec
from llm2loss.errors import ConfigError
from llm2loss.gate import DEFAULT_MAX_ERROR_RATE_RISE, evaluate_gate, gate_lines
from llm2loss.store import ArtifactStore

REASON = "measured error-rate disparity of attribute 'html' grew from +0.010 to +0.200"
ESTIMATED = ("phrase 'a message from a mailing list' rose 28.0 percentile points (P(rose) = 1.00; "
             "estimated, not measured)")


def manifest(version: str = "v2", flag: bool = False) -> dict[str, Any]:
    prefix = f"audits/spam-filter/{version}/report"
    return {"status": "completed", "model": "spam-filter", "version": version,
            "report": f"{prefix}/index.html", "metrics": f"{prefix}/metrics.json",
            "significant_regression": flag, "completed_at": "2026-12-01T00:00:00+00:00"}


def regression(*, flag: bool, reasons: list[str] | None = None, before: float | None = 0.044,
               after: float | None = 0.05) -> dict[str, Any]:
    return {"previous": {"model": "spam-filter", "version": "v1"},
            "current": {"model": "spam-filter", "version": "v2"},
            "significant_regression": flag, "reasons": reasons if reasons is not None else ([REASON] if flag else []),
            "overall": {"test_error_rate": {"previous": before, "current": after},
                        "test_loss_mean": {"previous": 0.2, "current": 0.3}}}


def test_no_regression_and_a_small_error_rise_passes():
    result = evaluate_gate(manifest(), regression(flag=False, before=0.044, after=0.05))
    assert result.passed and result.reasons == []
    assert result.error_rate_rise == pytest.approx(0.006)
    (line,) = gate_lines(result)
    assert line.startswith("PASS spam-filter@v2: no significant regression against spam-filter@v1")
    assert "0.044 -> 0.050" in line


def test_a_significant_regression_fails_with_its_reasons():
    second = ("measured loss gap of 'html' minus 'plain text' (held-out samples each phrase "
              "retrieves) is now +0.300, 90% interval [+0.100, +0.500] excluding 0; it was +0.010 "
              "[-0.200, +0.220]")
    result = evaluate_gate(manifest(flag=True), regression(flag=True, reasons=[REASON, second]))
    assert not result.passed
    assert gate_lines(result) == [f"FAIL spam-filter@v2: {REASON}", f"FAIL spam-filter@v2: {second}"]


def test_an_error_rate_rise_over_the_threshold_fails_even_without_a_flagged_regression():
    result = evaluate_gate(manifest(), regression(flag=False, before=0.044, after=0.181))
    assert not result.passed
    (line,) = gate_lines(result)
    assert "held-out error rate rose from 0.044 to 0.181 (+0.137" in line
    assert f"allowed {DEFAULT_MAX_ERROR_RATE_RISE:+.3f}" in line
    assert evaluate_gate(manifest(), regression(flag=False, before=0.044, after=0.181),
                         max_error_rate_rise=0.2).passed


def test_both_reasons_at_once_give_two_lines():
    result = evaluate_gate(manifest(flag=True), regression(flag=True, before=0.044, after=0.181))
    assert len(gate_lines(result)) == 2 and not result.passed


def test_estimated_rises_alone_are_predictions_and_pass_with_a_note():
    report = {**regression(flag=False), "predicted": [ESTIMATED]}
    result = evaluate_gate(manifest(), report)
    assert result.passed and result.reasons == [] and not result.significant_regression
    assert result.notes == ["1 estimated rise is a prediction against spam-filter@v1, not measured, "
                            f"so not a reason to fail: {ESTIMATED}"]
    (line,) = gate_lines(result)
    assert line.startswith("PASS spam-filter@v2: no significant regression against spam-filter@v1")
    assert line.endswith("; 1 estimated rise is a prediction, not measured (regression.json "
                         "'predicted')")
    assert result.predicted == [ESTIMATED] and result.to_dict()["predicted"] == [ESTIMATED]


def test_a_report_of_the_earlier_rule_fails_only_on_its_measured_reasons():
    """regression.json written before the measured-only rule counted estimated rises as reasons."""
    old_estimated = "phrase 'a message from a mailing list' rose 28.0 percentile points (P(rose) = 1.00)"
    only_estimated = evaluate_gate(manifest(flag=True), regression(flag=True, reasons=[old_estimated]))
    assert only_estimated.passed and only_estimated.reasons == []
    assert old_estimated in only_estimated.notes[0]
    mixed = evaluate_gate(manifest(flag=True), regression(flag=True, reasons=[old_estimated, REASON]))
    assert not mixed.passed and mixed.reasons == [REASON]


def test_a_flag_without_reasons_still_fails_with_one_line():
    result = evaluate_gate(manifest(flag=True), regression(flag=True, reasons=[]))
    assert not result.passed
    assert "flagged a significant regression against spam-filter@v1" in gate_lines(result)[0]


def test_first_version_passes_with_a_note():
    result = evaluate_gate(manifest("v1"), None)
    assert result.passed and result.previous is None
    assert gate_lines(result) == ["PASS spam-filter@v1: no earlier version of this model was audited on "
                                  "the same dataset and encoder, so there is nothing to regress from"]


def test_unknown_error_rates_check_only_the_regression_report():
    result = evaluate_gate(manifest(), regression(flag=False, before=None, after=None))
    assert result.passed and result.error_rate_rise is None
    assert "not known for both versions" in result.notes[0]


@pytest.mark.parametrize("bad", [-0.01, float("nan"), float("inf")])
def test_a_bad_threshold_is_refused(bad):
    with pytest.raises(ConfigError, match="must be a number >= 0"):
        evaluate_gate(manifest(), regression(flag=False), max_error_rate_rise=bad)


# --- the command ---------------------------------------------------------------------------------


def _audited_store(tmp_path: Path, reg: dict[str, Any] | None, flag: bool) -> str:
    """A folder store with spam-filter@v2 registered and its audit's manifest (+ regression.json)."""
    uri = str(tmp_path / "store")
    store = ArtifactStore(uri)
    registry.register(store, ReleaseSpec(model="spam-filter", version="v2", entrypoint="llm2loss.example_models.spam:naive_bayes",
                                         dataset=DatasetSpec(name="toy", kind="generated_text"), task="binary"))
    m = manifest(flag=flag)
    store.write_json("audits/spam-filter/v2/manifest.json", m)
    if reg is not None:
        store.write_json(m["metrics"].rsplit("/", 1)[0] + "/regression.json", reg)
    return uri


def test_gate_command_fails_with_one_line_per_reason(cli, tmp_path):
    store = _audited_store(tmp_path, regression(flag=True, before=0.044, after=0.181), flag=True)
    result = cli("gate", "spam-filter@v2", "--store", store)
    assert result.exit_code == 1
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("FAIL spam-filter@v2: held-out error rate rose from 0.044 to 0.181")
    assert lines[1] == f"FAIL spam-filter@v2: {REASON}"
    assert len(lines) == 2 and result.stderr == ""


def test_gate_command_passes_and_the_threshold_is_settable(cli, tmp_path):
    store = _audited_store(tmp_path, regression(flag=False, before=0.044, after=0.09), flag=False)
    strict = cli("gate", "spam-filter@v2", "--store", store)
    assert strict.exit_code == 1 and "rose from 0.044 to 0.090" in strict.stdout
    loose = cli("gate", "spam-filter@v2", "--max-error-rise", "0.05", "--store", store)
    assert loose.exit_code == 0, loose.stdout
    assert loose.stdout.startswith("PASS spam-filter@v2")


def test_gate_command_passes_a_release_whose_rises_are_only_estimated(cli, tmp_path):
    report = {**regression(flag=False), "predicted": [ESTIMATED]}
    store = _audited_store(tmp_path, report, flag=False)
    result = cli("gate", "spam-filter@v2", "--store", store)
    assert result.exit_code == 0, result.stdout
    assert result.stdout.startswith("PASS spam-filter@v2: no significant regression")
    assert "1 estimated rise is a prediction, not measured" in result.stdout


def test_gate_command_json(cli, tmp_path):
    store = _audited_store(tmp_path, regression(flag=True), flag=True)
    result = cli("gate", "spam-filter@v2", "--store", store, "--json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["passed"] is False and data["reasons"] == [REASON]
    assert data["previous"] == "spam-filter@v1" and data["error_rate_rise"] == pytest.approx(0.006)
    first = _audited_store(tmp_path / "first", None, flag=False)
    passed = cli("gate", "spam-filter@v2", "--store", first, "--json")
    assert passed.exit_code == 0 and json.loads(passed.stdout)["passed"] is True


def test_gate_of_an_unfinished_audit_is_one_line(cli, tmp_path):
    uri = str(tmp_path / "store")
    registry.register(ArtifactStore(uri), ReleaseSpec(model="toy", version="v1", entrypoint="llm2loss.example_models.spam:naive_bayes",
                                                      dataset=DatasetSpec(name="toy", kind="generated_text"), task="binary"))
    assert_one_line_error(cli("gate", "toy@v1", "--store", uri), "audit of toy@v1 is not finished", "llm2loss audit toy@v1")
    assert_one_line_error(cli("gate", "toy@v9", "--store", uri), "unknown release toy@v9", "known: toy@v1")
