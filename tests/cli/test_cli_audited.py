"""The command line against real audits: register, audit, demo, query, compare, discover, report.

Once per module: the two example spam filters (a 160-email SpamAssassin slice) are registered with
`llm2loss register` (emitting their events to the real Prefect test server), v1 is audited with
`llm2loss audit` and v2 with `llm2loss demo` (which finds both registered and v1 audited), on the
session's Dask LocalCluster, into a local folder store. Every other command is asked about these
audits, and the Prefect API is read back for the artifacts and events the audits published.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import assert_one_line_error, write_release_file
from typer.testing import CliRunner

from llm2loss import audit as stages
from llm2loss.cli import app
from llm2loss.config import StoreSettings
from llm2loss.report import prefect_artifact_payloads
from llm2loss.store import ArtifactStore
from llm2loss.vocab import load_vocabulary

# Two audits in the module fixture: ~2 minutes on an idle 2-core machine, far more when the
# cores are shared, so the fixture gets more than the project's default 900 s before it is killed.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]

MODEL = "spam-filter"


def run(*args: Any, env: dict[str, str] | None = None):
    """`llm2loss ARGS...` in-process, with a terminal wide enough that table headers never wrap."""
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200", **(env or {})})


@pytest.fixture(scope="module")
def audited(prefect_server, dask_cluster, cache_dir, spam_releases, tmp_path_factory) -> dict[str, Any]:
    """Register both releases, audit v1 with `llm2loss audit` and v2 with `llm2loss demo`."""
    started = datetime.now(timezone.utc) - timedelta(seconds=5)
    root = tmp_path_factory.mktemp("cli-audit")
    store = str(root / "store")
    env = {
        "LLM2LOSS_DASK__ADDRESS": dask_cluster.scheduler_address,
        "LLM2LOSS_AUDIT__SHARD_SIZE": "80",
        "LLM2LOSS_AUDIT__DIAGNOSERS__N_MEMBERS": "2",
        "LLM2LOSS_CACHE_DIR": str(cache_dir),
    }
    registered = {}
    for release, weights in spam_releases:
        path = write_release_file(release, root / release.version)
        registered[release.version] = run("register", path, "--weights", weights, "--store", store, env=env)
    audit_v1 = run("audit", f"{MODEL}@v1", "--store", store, env=env)
    demo = run("demo", "--limit", "160", "--store", store, env=env)
    return {"store": store, "env": env, "started": started, "registered": registered,
            "audit_v1": audit_v1, "demo": demo}


def _manifest(audited: dict[str, Any], version: str) -> dict[str, Any]:
    manifest = stages.audit_manifest(StoreSettings(uri=audited["store"]), MODEL, version)
    assert manifest is not None
    return manifest


def test_register_then_audit_and_demo_through_the_cli(audited):
    for version, result in audited["registered"].items():
        assert result.exit_code == 0, result.stderr
        assert f"registered {MODEL}@{version}" in result.stdout
        assert result.stderr == "", result.stderr
        assert f"emitted llm2loss.release.registered for {MODEL}@{version}" in result.stdout
    audit_v1 = audited["audit_v1"]
    assert audit_v1.exit_code == 0, (audit_v1.stdout, audit_v1.stderr)
    assert f"audit of {MODEL}@v1 completed" in audit_v1.stdout
    assert _manifest(audited, "v1")["report"] in audit_v1.stdout
    assert "shard" in audit_v1.stderr  # the progress bar
    demo = audited["demo"]
    assert demo.exit_code == 0, (demo.stdout, demo.stderr)
    assert "already registered" in demo.stdout and "Regression report" in demo.stdout
    assert _manifest(audited, "v2")["summary"]["samples_used"] > 0


def test_audit_json_of_a_finished_audit_is_its_manifest(audited):
    result = run("audit", f"{MODEL}@v1", "--store", audited["store"], "--json", env=audited["env"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == _manifest(audited, "v1")


def test_releases_and_audits(audited):
    releases = json.loads(run("releases", "--store", audited["store"], "--json").stdout)
    assert [(r["model"], r["version"], r["audited"]) for r in releases] == [
        (MODEL, "v1", True), (MODEL, "v2", True)]
    audits = json.loads(run("audits", "--store", audited["store"], "--json").stdout)
    assert [a["version"] for a in audits] == ["v1", "v2"]
    assert audits[1]["significant_regression"] == _manifest(audited, "v2")["significant_regression"]
    assert audits[0]["report"] == _manifest(audited, "v1")["report"]
    table = run("audits", "--store", audited["store"])
    assert table.exit_code == 0 and "Audits" in table.stdout and "v2" in table.stdout


def test_query_json_and_table(audited):
    phrases = ["an email written in HTML", "a reply on a mailing list", "[bold]<b>markup</b>[/bold]"]
    result = run("query", f"{MODEL}@v2", *phrases, "--store", audited["store"], "--json")
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["phrase"] for r in rows] == phrases
    for row in rows:
        assert row["loss_q0"] <= row["loss_q1"] <= row["loss_q2"] <= row["loss_q3"] <= row["loss_q4"]
        assert row["loss_std"] >= 0 and 0.0 <= row["familiarity_mean"] <= 1.0
    assert rows[0]["loss_mean"] != rows[1]["loss_mean"]
    # an e-mail topic is more familiar to an e-mail audit than markup noise or a sunset photo
    sunset = json.loads(run("query", f"{MODEL}@v2", "a photo of a sunset over the sea",
                            "--store", audited["store"], "--json").stdout)[0]
    assert rows[0]["familiarity_mean"] > sunset["familiarity_mean"]
    table = run("query", f"{MODEL}@v2", *phrases, "--store", audited["store"])
    assert table.exit_code == 0
    assert "loss_mean" in table.stdout and "familiarity_mean" in table.stdout
    assert "[bold]" in table.stdout  # user text is printed as typed, not read as rich markup
    assert f"{rows[0]['loss_mean']:.3f}" in table.stdout


def test_query_errors_against_a_finished_audit(audited):
    assert_one_line_error(run("query", f"{MODEL}@v2", "", "--store", audited["store"]), "a phrase is empty")
    assert_one_line_error(run("query", f"{MODEL}@v7", "x", "--store", audited["store"]),
                          "unknown release spam-filter@v7", "spam-filter@v1", "spam-filter@v2")


def test_compare_prints_p_quartiles_and_an_honest_sentence(audited):
    a, b = "an email written in HTML", "a reply on a mailing list"
    result = run("compare", f"{MODEL}@v2", a, b, "--store", audited["store"], "--json")
    assert result.exit_code == 0, result.stderr
    row = json.loads(result.stdout)
    p = row["p_a_worse"]
    assert 0.0 <= p <= 1.0 and row["q1"] <= row["q2"] <= row["q3"]
    assert row["verdict"] in ("a worse", "b worse", "uncertain")
    assert row["uncertain"] == (row["verdict"] == "uncertain")
    if row["uncertain"]:
        assert row["sentence"].startswith("Uncertain") and row["reason"]
    else:  # stated: members agree and the measured gap of the retrieved samples backs it
        worse = a if row["verdict"] == "a worse" else b
        assert row["sentence"].startswith(f'The model does worse on "{worse}"')
        assert (row["measured_low"] > 0) == (row["verdict"] == "a worse")
    assert f"P(a worse) = {p:.2f}" in row["sentence"]
    assert row["n_a"] > 0 and row["n_b"] > 0 and len(row["examples_a"]) <= 5
    swapped = json.loads(run("compare", f"{MODEL}@v2", b, a, "--store", audited["store"], "--json").stdout)
    assert swapped["q2"] == pytest.approx(-row["q2"], abs=1e-5)
    table = run("compare", f"{MODEL}@v2", a, b, "--store", audited["store"])
    assert table.exit_code == 0 and row["sentence"] in table.stdout and "p_a_worse" in table.stdout


def test_discover_with_the_default_and_a_named_vocabulary(audited, tmp_path):
    result = run("discover", f"{MODEL}@v2", "--top-k", "4", "--store", audited["store"], "--json")
    assert result.exit_code == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["vocabulary"] == ["email_topics"]  # in-domain for text; text_ood is not offered
    topics = set(load_vocabulary("email_topics"))
    means = [r["mean"] for r in found["highest_loss"]]
    assert len(means) == 4 and means == sorted(means, reverse=True)
    assert {r["phrase"] for r in found["highest_loss"]} <= topics
    assert len(found["least_familiar"]) == 4
    familiarity = [r["familiarity"] for r in found["least_familiar"]]
    assert all(0.0 <= f <= 1.0 for f in familiarity)
    assert [r["mean"] for r in found["least_familiar"]] == sorted(r["mean"] for r in found["least_familiar"])
    vocab = tmp_path / "mine.txt"
    vocab.write_text("# my phrases\nan invoice\na newsletter\na password reset\n", encoding="utf-8")
    mine = json.loads(run("discover", f"{MODEL}@v2", "--vocab", vocab, "--store", audited["store"], "--json").stdout)
    assert {r["phrase"] for r in mine["highest_loss"]} == {"an invoice", "a newsletter", "a password reset"}
    table = run("discover", f"{MODEL}@v2", "--vocab", "email_topics", "--top-k", "3", "--store", audited["store"])
    assert table.exit_code == 0 and "Highest estimated loss" in table.stdout and "Least familiar" in table.stdout


def test_report_prints_the_local_path_of_index_html(audited):
    result = run("report", f"{MODEL}@v1", "--store", audited["store"])
    assert result.exit_code == 0, result.stderr
    path = Path(result.stdout.strip())
    assert path.name == "index.html" and path.is_file()
    assert "<html" in path.read_text(encoding="utf-8").lower()
    as_json = json.loads(run("report", f"{MODEL}@v1", "--store", audited["store"], "--json").stdout)
    assert Path(as_json["report"]) == path


def test_report_downloads_from_s3(audited, s3_server, tmp_path):
    """The v1 audit's manifest and report copied to S3: `report` downloads and prints a local path."""
    local = ArtifactStore(audited["store"])
    remote_uri = f"s3://{s3_server.bucket}/cli-{uuid.uuid4().hex[:8]}"
    remote = ArtifactStore(remote_uri, endpoint_url=s3_server.endpoint_url)
    manifest = _manifest(audited, "v1")
    report_prefix = manifest["report"].rsplit("/", 1)[0]
    for key in local.list(report_prefix + "/") + [f"releases/{MODEL}/v1/release.json", f"audits/{MODEL}/v1/manifest.json"]:
        remote.write_bytes(key, local.read_bytes(key))
    env = {"LLM2LOSS_CACHE_DIR": str(tmp_path / "cache")}
    result = run("report", f"{MODEL}@v1", "--store", remote_uri, env=env)
    assert result.exit_code == 0, result.stderr
    path = Path(result.stdout.strip())
    assert path.is_file() and str(path).startswith(str(tmp_path / "cache"))
    assert path.read_bytes() == local.read_bytes(manifest["report"])


def _read_artifacts(keys: list[str]) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        return client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=keys)))


def _flow_run_parameters(flow_run_id) -> dict[str, Any]:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(flow_run_id).parameters


def test_audit_publishes_summary_tables_and_link_artifacts_per_model(audited):
    from flows.audit import _artifact_key

    store = ArtifactStore(audited["store"])
    manifest = _manifest(audited, "v2")
    payloads = prefect_artifact_payloads(store.read_json(manifest["metrics"]), "x")
    tables = [name for name, rows in payloads["tables"].items() if rows]
    expected = {_artifact_key("llm2loss", MODEL, "summary"): "markdown",
                _artifact_key("llm2loss", MODEL, "report"): "markdown",  # Prefect stores links as markdown
                **{_artifact_key("llm2loss", MODEL, name): "table" for name in tables}}
    assert len(tables) >= 3
    by_run: dict[Any, dict[str, Any]] = {}
    for artifact in _read_artifacts(list(expected)):
        by_run.setdefault(artifact.flow_run_id, {})[artifact.key] = artifact
    ours = {run_id: arts for run_id, arts in by_run.items()
            if _flow_run_parameters(run_id).get("settings", {}).get("store", {}).get("uri") == audited["store"]}
    versions = {_flow_run_parameters(run_id)["version"]: arts for run_id, arts in ours.items()}
    assert set(versions) == {"v1", "v2"}  # one history per key: both versions under the same keys
    for version, arts in versions.items():
        assert {key: a.type for key, a in arts.items()} == expected
        link = str(arts[_artifact_key("llm2loss", MODEL, "report")].data)
        assert re.fullmatch(rf"\[Report of {MODEL}@{version}\]\(\S+/audits/{MODEL}/{version}/report/index\.html\)", link), link
        summary = arts[_artifact_key("llm2loss", MODEL, "summary")]
        assert f"{MODEL}" in str(summary.data) and version in str(summary.data)


def test_audit_completed_events_carry_the_regression_flag(audited):
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter, EventResourceFilter

    from flows.events import AUDIT_COMPLETED, RELEASE_REGISTERED

    def events(name: str, version: str) -> list[Any]:
        flt = EventFilter(
            event=EventNameFilter(name=[name]),
            occurred=EventOccurredFilter(since=audited["started"]),
            resource=EventResourceFilter(id=[f"llm2loss.release.{MODEL}.{version}"]),
        )
        with get_client(sync_client=True) as client:
            return client.read_events(filter=flt, limit=50).events

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the server persists events asynchronously
        found = {v: events(AUDIT_COMPLETED, v) for v in ("v1", "v2")}
        registered = {v: events(RELEASE_REGISTERED, v) for v in ("v1", "v2")}
        if all(found.values()) and all(registered.values()):
            break
        time.sleep(1)
    for version in ("v1", "v2"):
        manifest = _manifest(audited, version)
        mine = [e for e in found[version] if e.payload.get("report", "").endswith(manifest["report"])]
        assert mine, found[version]
        assert mine[0].payload["significant_regression"] == manifest["significant_regression"]
        assert registered[version][0].payload == {"model": MODEL, "version": version}
    assert found["v1"] and not _manifest(audited, "v1")["significant_regression"]  # nothing to regress from
