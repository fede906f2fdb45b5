"""Audit events and artifacts against the real Prefect test server (prefect_test_harness).

- `emit_audit_events` sends `llm2loss.audit.completed` always and `llm2loss.audit.regressed` only
  for a significant regression, with the reasons; both are read back from the server.
- The README's automation (`regression_trigger`) is accepted by the server as it is documented.
- Artifact keys are per model and version, lowercase letters, digits and dashes; the report
  artifact holds the link and the numbered headline findings (published from a flow run).
The full audit publishes and emits the same through the flow: see tests/cli/test_cli_audited.py.
"""

from __future__ import annotations

import re
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from flows.artifacts import artifact_key, release_artifact_key, report_markdown
from flows.events import AUDIT_COMPLETED, AUDIT_REGRESSED, audit_events, emit_audit_events, regression_trigger

pytestmark = pytest.mark.integration

REGRESSION = {"previous": {"model": "m", "version": "v1"}, "significant_regression": True,
              "reasons": ["phrase 'x' rose 30.0 percentile points (P(rose) = 1.00)"],
              "overall": {"test_error_rate": {"previous": 0.044, "current": 0.181}}}


def _events(name: str, resource_id: str, since: datetime, want: int, timeout_s: float = 60) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter, EventResourceFilter

    flt = EventFilter(event=EventNameFilter(name=[name]), occurred=EventOccurredFilter(since=since),
                      resource=EventResourceFilter(id=[resource_id]))
    deadline = time.monotonic() + timeout_s
    while True:  # the server persists events asynchronously
        with get_client(sync_client=True) as client:
            found = client.read_events(filter=flt, limit=50).events
        if len(found) >= want or time.monotonic() > deadline:
            return found
        time.sleep(1)


def _flush_events() -> None:
    from prefect.events.worker import EventsWorker

    EventsWorker.drain_all(timeout=30)


def test_audit_events_regressed_only_when_significant():
    plain = audit_events("m", "v1", "file:///r/index.html", None)
    assert [name for name, _ in plain] == [AUDIT_COMPLETED]
    assert plain[0][1]["significant_regression"] is False and plain[0][1]["previous_version"] is None
    events = dict(audit_events("m", "v2", "file:///r/index.html", REGRESSION))
    assert set(events) == {AUDIT_COMPLETED, AUDIT_REGRESSED}
    assert events[AUDIT_REGRESSED]["reasons"] == REGRESSION["reasons"]
    assert events[AUDIT_REGRESSED]["error_rate_current"] == 0.181
    quiet = dict(audit_events("m", "v2", "u", {**REGRESSION, "significant_regression": False}))
    assert set(quiet) == {AUDIT_COMPLETED}


def test_events_reach_the_prefect_server(prefect_server):
    since = datetime.now(timezone.utc) - timedelta(seconds=5)
    model = f"m{uuid.uuid4().hex[:8]}"
    assert emit_audit_events(model, "v1", "file:///a/index.html", None) == [AUDIT_COMPLETED]
    assert emit_audit_events(model, "v2", "file:///b/index.html", REGRESSION) == [AUDIT_COMPLETED, AUDIT_REGRESSED]
    _flush_events()
    regressed = _events(AUDIT_REGRESSED, f"llm2loss.release.{model}.v2", since, want=1)
    assert len(regressed) == 1
    assert regressed[0].payload["reasons"] == REGRESSION["reasons"]
    assert regressed[0].resource["llm2loss.version"] == "v2"
    assert len(_events(AUDIT_COMPLETED, f"llm2loss.release.{model}.v2", since, want=1)) == 1
    assert len(_events(AUDIT_COMPLETED, f"llm2loss.release.{model}.v1", since, want=1)) == 1
    assert _events(AUDIT_REGRESSED, f"llm2loss.release.{model}.v1", since, want=1, timeout_s=3) == []


def test_the_readme_automation_is_accepted_by_the_server(prefect_server):
    from prefect.automations import Automation
    from prefect.events.actions import DoNothing

    name = f"llm2loss-regression-alert-{uuid.uuid4().hex[:6]}"
    created = Automation(name=name, trigger=regression_trigger("spam-filter"), actions=[DoNothing()]).create()
    try:
        read = Automation.read(id=created.id)
        assert read.trigger.expect == {AUDIT_REGRESSED}
        assert read.trigger.match.model_dump()["prefect.resource.id"] == "llm2loss.release.spam-filter.*"
    finally:
        created.delete()


@pytest.mark.parametrize(("parts", "key"), [
    (("llm2loss", "spam-filter", "v2", "summary"), "llm2loss-spam-filter-v2-summary"),
    (("llm2loss", "Spam_Filter", "v1.2", "report"), "llm2loss-spam-filter-v1-2-report"),
    (("llm2loss", "modèle", "v__3", "x"), "llm2loss-mod-le-v-3-x"),
])
def test_artifact_keys_are_lowercase_letters_digits_dashes(parts, key):
    assert artifact_key(*parts) == key
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", artifact_key(*parts))


def test_keys_differ_per_version_and_stay_short():
    assert release_artifact_key("m", "v1", "report") != release_artifact_key("m", "v2", "report")
    long = release_artifact_key("m" * 80, "v" * 80, "summary")
    assert len(long) <= 100 and not long.endswith("-")


def test_report_markdown_numbers_the_findings_beside_the_link():
    text = report_markdown("m@v2", "file:///x y/index.html", ["First *finding*.", "Second [one]."],
                           ["phrase 'x' rose"])
    lines = text.splitlines()
    assert lines[0] == "## [Report of m@v2](file:///x%20y/index.html)"
    assert "1. First \\*finding\\*." in lines and "2. Second \\[one\\]." in lines
    assert "1. phrase 'x' rose" in lines


def test_report_artifact_from_a_flow_run_is_markdown_with_link_and_findings(prefect_server):
    from prefect import flow
    from prefect.artifacts import create_markdown_artifact
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    key = release_artifact_key(f"m{uuid.uuid4().hex[:6]}", "v2", "report")

    @flow
    def publish() -> None:
        create_markdown_artifact(markdown=report_markdown("m@v2", "file:///r/index.html", ["A finding."]), key=key)

    publish()
    with get_client(sync_client=True) as client:
        (artifact,) = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
    assert artifact.type == "markdown"
    assert "[Report of m@v2](file:///r/index.html)" in str(artifact.data) and "1. A finding." in str(artifact.data)
