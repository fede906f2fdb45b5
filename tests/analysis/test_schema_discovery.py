"""metrics.json's discovery rows: today's key, the key older audits wrote, and tampered values."""

from __future__ import annotations

from llm2loss.analysis.schema import discovery_rows


def test_highest_loss_rows_are_read_under_todays_key() -> None:
    metrics = {"discovery": {"highest_loss": [{"phrase": "a"}], "least_familiar": [{"phrase": "b"}]}}
    assert discovery_rows(metrics, "highest_loss") == [{"phrase": "a"}]
    assert discovery_rows(metrics, "least_familiar") == [{"phrase": "b"}]


def test_an_audit_written_before_the_rename_is_read_the_same() -> None:
    old = {"discovery": {"top_failures": [{"phrase": "a"}], "least_familiar": []}}
    assert discovery_rows(old, "highest_loss") == [{"phrase": "a"}]
    assert discovery_rows(old, "least_familiar") == []


def test_tampered_or_missing_discovery_reads_as_no_rows() -> None:
    for metrics in ({}, {"discovery": "x"}, {"discovery": {"highest_loss": "x"}}, {"discovery": None}):
        assert discovery_rows(metrics, "highest_loss") == []
