"""The command line against real audits: register, audit, demo, query, compare, discover, report.

Once per module: the two example spam filters (a 160-email SpamAssassin slice) are registered with
`llm2loss register` (emitting their events to the real Prefect test server), v1 is audited with
`llm2loss audit` and v2 with `llm2loss demo` (which finds both registered and v1 audited), on the
session's Dask LocalCluster, into a local folder store. Every other command is asked about these
audits, and the Prefect API is read back for the artifacts and events the audits published.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import assert_one_line_error, write_release_file
from typer.testing import CliRunner

from llm2loss import audits
from llm2loss import pipeline as stages
from app.cli import app
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
    manifest = audits.finished_manifest(stages.get_store(StoreSettings(uri=audited["store"])), MODEL, version)
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
    for stage in ("plan", "embed", "losses", "train and analyse", "regression", "report"):
        assert f"  {stage}" in audit_v1.stderr, audit_v1.stderr
    console = audit_v1.stdout + audit_v1.stderr
    assert " | INFO " not in console and "distributed." not in console and "Task run" not in console
    assert "  1. " in audit_v1.stdout and "Headline findings of spam-filter@v1" in audit_v1.stdout
    log_file = Path(re.search(r"\(log: (\S+)\)", audit_v1.stderr).group(1))
    assert "Beginning flow run" in log_file.read_text(encoding="utf-8")  # the log lines went here
    demo = audited["demo"]
    assert demo.exit_code == 0, (demo.stdout, demo.stderr)
    assert "already registered" in demo.stdout and "Regression report" in demo.stdout
    assert _manifest(audited, "v2")["summary"]["samples_used"] > 0


def test_audit_json_of_a_finished_audit_is_its_manifest(audited):
    result = run("audit", f"{MODEL}@v1", "--store", audited["store"], "--json", env=audited["env"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == _manifest(audited, "v1")
    again = run("audit", f"{MODEL}@v1", "--store", audited["store"], env=audited["env"])
    assert again.exit_code == 0 and again.stderr == ""
    assert "already completed" in again.stdout and "  1. " in again.stdout


def test_audit_of_a_finished_release_starts_nothing(audited):
    """Not even Prefect is imported: the manifest is read and the findings printed."""
    code = ("import sys; from app.cli import app; "
            f"app(['audit', '{MODEL}@v2', '--store', {audited['store']!r}], standalone_mode=False); "
            "print('imported:', sorted(m for m in ('prefect', 'dask', 'distributed', 'torch', 'flows.audit') "
            "if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"})
    assert proc.returncode == 0, proc.stderr
    assert "already completed" in proc.stdout and "imported: []" in proc.stdout, proc.stdout[-500:]
    assert proc.stderr == "", proc.stderr


def _close(ours, theirs, where: str) -> None:
    """JSON answers equal, numbers to 1e-5 (numpy and torch round float32 differently)."""
    if isinstance(theirs, float) and isinstance(ours, (int, float)):
        assert ours == pytest.approx(theirs, abs=1e-5, rel=1e-5, nan_ok=True), where
    elif isinstance(theirs, dict):
        assert ours.keys() == theirs.keys(), where
        for key in theirs:
            _close(ours[key], theirs[key], f"{where}.{key}")
    elif isinstance(theirs, list):
        assert len(ours) == len(theirs), where
        for i, (a, b) in enumerate(zip(ours, theirs)):
            _close(a, b, f"{where}[{i}]")
    else:
        assert ours == theirs, where


def test_questions_import_no_torch_and_answer_as_torch_does(audited):
    """The default MiniLM audit is answered in numpy (llm2loss.diagnoser.numpy_scoring, encoders.bert_numpy):
    a cold `query`, `compare` or `discover` process never imports torch, and its answers are those
    of the torch encoder and LossDiagnosers to 1e-5."""
    from llm2loss.jsonable import jsonable
    from llm2loss.query import AuditQuery

    store = audited["store"]
    phrases = ["an email written in HTML", "a reply on a mailing list"]
    questions = {
        "query": ["query", f"{MODEL}@v2", *phrases, "--store", store, "--json"],
        "compare": ["compare", f"{MODEL}@v2", *phrases, "--store", store, "--json"],
        "discover": ["discover", f"{MODEL}@v2", "--top-k", "3", "--store", store, "--json"],
    }
    answers = {}
    for name, argv in questions.items():
        code = ("import sys; from app.cli import app; "
                f"app({argv!r}, standalone_mode=False); "
                "print('torch imported:', 'torch' in sys.modules, file=sys.stderr)")
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr.strip().splitlines()[-1] == "torch imported: False", (name, proc.stderr[-800:])
        answers[name] = json.loads(proc.stdout)
    in_torch = AuditQuery(StoreSettings(uri=store), MODEL, "v2", torch_free=False)
    assert in_torch.backend == "torch"
    expected = json.loads(run("query", f"{MODEL}@v2", *phrases, "--store", store, "--json").stdout)
    assert AuditQuery(StoreSettings(uri=store), MODEL, "v2").backend == "numpy"
    torch_rows = jsonable(in_torch.estimate(phrases).to_dict(orient="records"))
    _close(answers["query"], torch_rows, "query")
    _close(expected, torch_rows, "query in-process")
    _close(answers["compare"], jsonable(in_torch.compare(*phrases)), "compare")
    names, vocabulary = in_torch.default_vocabulary()
    _close(answers["discover"], jsonable({"vocabulary": names, **in_torch.discover(vocabulary, 3)}), "discover")


def test_gate_on_real_audits(audited):
    first = run("gate", f"{MODEL}@v1", "--store", audited["store"])
    assert first.exit_code == 0 and first.stdout.startswith(f"PASS {MODEL}@v1")
    regression = ArtifactStore(audited["store"]).read_json(f"audits/{MODEL}/v2/report/regression.json")
    rates = regression["overall"]["test_error_rate"]
    rise = rates["current"] - rates["previous"]
    result = json.loads(run("gate", f"{MODEL}@v2", "--store", audited["store"], "--json").stdout)
    expected = list(regression["reasons"]) if regression["significant_regression"] else []
    rose = rise > 0.02
    assert result["reasons"][int(rose):] == expected  # the error-rate line first, when there is one
    assert (len(result["reasons"]) > len(expected)) == rose
    lines = run("gate", f"{MODEL}@v2", "--store", audited["store"], "--max-error-rise", "1")
    assert lines.exit_code == (1 if expected else 0)
    assert len(lines.stdout.strip().splitlines()) == max(len(expected), 1)


def test_a_failing_audit_is_one_line_without_prefect_logs(audited, tmp_path):
    """The flow really runs and fails (the entrypoint does not import): one error line, no log."""
    from llm2loss.config import ReleaseSpec

    store = str(tmp_path / "store")  # a copy: the shared store keeps exactly v1 and v2
    shutil.copytree(audited["store"], store)
    data = json.loads(ArtifactStore(store).read_bytes(f"releases/{MODEL}/v1/release.json"))
    data.update(version="broken", entrypoint="no_such_module_xyz:model")
    for key in ("weights", "created_at"):
        data.pop(key, None)
    release = ReleaseSpec.model_validate(data)
    path = write_release_file(release, tmp_path)
    assert run("register", path, "--store", store, "--no-event").exit_code == 0
    env = audited["env"]  # tests/conftest.py allows no_such_module_xyz, so the import is tried
    result = run("audit", f"{MODEL}@broken", "--store", store, env=env)
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 1 and lines[-1].startswith("error: ") and "no_such_module_xyz" in lines[-1]
    assert "fix the module path" in lines[-1] and sum(line.startswith("error") for line in lines) == 1
    assert lines[0].startswith(f"auditing {MODEL}@broken") and all(line.startswith("  ") for line in lines[1:-1])
    assert " | INFO " not in result.stdout + result.stderr and "Traceback" not in result.stdout
    as_json = run("audit", f"{MODEL}@broken", "--store", store, "--json", env=env)
    assert as_json.exit_code == 1 and json.loads(as_json.stdout)["type"] == "ConfigError"


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
    assert "familiarity" in table.stdout and "familiarity_mean" not in table.stdout  # named columns
    assert "[bold]" in table.stdout  # user text is printed as typed, not read as rich markup
    if "percentile" in rows[0]:  # the report's units; raw scores only in --json
        assert "percentile" in table.stdout and "loss_mean" not in table.stdout
        assert f"{rows[0]['percentile']:.0f}" in table.stdout
    else:  # an AuditQuery without percentiles: the raw score, named as such
        assert "rank score" in table.stdout and f"{rows[0]['loss_mean']:.3f}" in table.stdout


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
    assert table.exit_code == 0 and row["sentence"] in table.stdout and "P(A worse)" in table.stdout
    assert "p_a_worse" not in table.stdout
    if "verdict" in row:
        assert row["verdict"] in table.stdout and "percentile gap" in table.stdout


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
    least = table.stdout.split("Least familiar", 1)[1]
    assert "familiarity P(looks like the data)" in least and " mean " not in least  # familiarity named so


def test_piped_tables_are_never_cut(audited):
    """A pipe has no width: long phrases and every column header print whole (COLUMNS unset)."""
    long = "an email about " + "a very long and particular subject " * 6
    result = CliRunner().invoke(app, ["query", f"{MODEL}@v2", long.strip(), "--store", audited["store"]],
                                env={"COLUMNS": None})
    assert result.exit_code == 0, result.stderr
    assert long.strip() in result.stdout and "…" not in result.stdout


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


def test_audit_publishes_artifacts_per_model_and_version(audited):
    from flows.artifacts import release_artifact_key

    store = ArtifactStore(audited["store"])
    for version in ("v1", "v2"):
        manifest = _manifest(audited, version)
        payloads = prefect_artifact_payloads(store.read_json(manifest["metrics"]), "x")
        tables = [name for name, rows in payloads["tables"].items() if rows]
        assert len(tables) >= 3
        expected = {release_artifact_key(MODEL, version, "summary"): "markdown",
                    release_artifact_key(MODEL, version, "report"): "markdown",
                    **{release_artifact_key(MODEL, version, name): "table" for name in tables}}
        assert all(re.fullmatch(r"[a-z0-9-]+", key) for key in expected)
        ours = [a for a in _read_artifacts(list(expected))
                if _flow_run_parameters(a.flow_run_id).get("settings", {}).get("store", {}).get("uri")
                == audited["store"]]
        assert {a.key: a.type for a in ours} == expected  # each version under its own keys
        report = next(a for a in ours if a.key == release_artifact_key(MODEL, version, "report"))
        text = str(report.data)
        assert re.search(rf"\[Report of {MODEL}@{version}\]\(\S+/audits/{MODEL}/{version}/report/index\.html\)", text), text
        assert "Headline findings" in text and "\n1. " in text  # the findings beside the link
        summary = next(a for a in ours if a.key == release_artifact_key(MODEL, version, "summary"))
        assert MODEL in str(summary.data) and version in str(summary.data)


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
    from flows.events import AUDIT_REGRESSED

    flagged = _manifest(audited, "v2")["significant_regression"]
    regressed = events(AUDIT_REGRESSED, "v2")
    deadline = time.monotonic() + 30
    while flagged and not regressed and time.monotonic() < deadline:
        time.sleep(1)
        regressed = events(AUDIT_REGRESSED, "v2")
    assert bool(regressed) == flagged
    if flagged:
        reasons = ArtifactStore(audited["store"]).read_json(f"audits/{MODEL}/v2/report/regression.json")["reasons"]
        assert regressed[0].payload["reasons"] == reasons
    assert events(AUDIT_REGRESSED, "v1") == []
