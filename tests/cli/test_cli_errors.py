"""The command line without a finished audit: help, and every bad input as one clear line.

No audit runs here: these are the failures a user meets first (typos in MODEL@VERSION, a wrong
store URI or S3 secret, empty phrases, unknown or unaudited releases, an unreachable Prefect API),
and each must be one `error:` line on stderr with a non-zero exit, never a traceback.
"""

from __future__ import annotations

import json
import socket
import uuid
from pathlib import Path

import pytest

from llm2loss import registry
from llm2loss.jsonable import jsonable
from llm2loss.config import DatasetSpec, ReleaseSpec
from llm2loss.query import MAX_PHRASE_CHARS
from llm2loss.store import ArtifactStore
from cli_helpers import assert_one_line_error, write_release_file

COMMANDS = ["audit", "register", "releases", "audits", "query", "compare", "discover", "report", "gate", "demo"]
AUDIT_COMMANDS = {  # command -> arguments after MODEL@VERSION
    "query": ["a phrase"],
    "compare": ["a phrase", "another phrase"],
    "discover": [],
    "report": [],
    "gate": [],
}


def tiny_release(model: str = "toy", version: str = "v1") -> ReleaseSpec:
    return ReleaseSpec(
        model=model, version=version, entrypoint="llm2loss.example_models.spam:naive_bayes",
        dataset=DatasetSpec(name="toy", kind="generated_text"), task="binary",
    )


@pytest.fixture
def store_with_release(tmp_path: Path) -> str:
    """A folder store holding one registered, never audited release: toy@v1."""
    uri = str(tmp_path / "store")
    registry.register(ArtifactStore(uri), tiny_release())
    return uri


def test_root_help_lists_every_command_with_examples(cli):
    result = cli("--help")
    assert result.exit_code == 0
    for command in COMMANDS:
        assert command in result.stdout
    assert "llm2loss compare spam-filter@v2" in result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_help_has_an_example(cli, command):
    result = cli(command, "--help")
    assert result.exit_code == 0, result.stderr
    assert "Example:" in result.stdout and f"llm2loss {command}" in result.stdout


@pytest.mark.parametrize("ref", ["spam-filter", "@v1", "spam-filter@", "a@b@c"])
@pytest.mark.parametrize("command", sorted(AUDIT_COMMANDS) + ["audit"])
def test_malformed_ref_is_one_line(cli, tmp_path, command, ref):
    result = cli(command, ref, *AUDIT_COMMANDS.get(command, []), "--store", tmp_path)
    assert_one_line_error(result, "is not MODEL@VERSION", "spam-filter@v2")


def test_unsafe_name_in_ref_is_refused(cli, tmp_path):
    result = cli("query", "../etc@v1", "a phrase", "--store", tmp_path)
    assert_one_line_error(result, "invalid model name", "'../etc'")


@pytest.mark.parametrize("uri", ["s3://", "s3://Bad_Bucket/prefix"])
@pytest.mark.parametrize("command", ["releases", "audits", "report"])
def test_bad_store_uri_is_one_line(cli, command, uri):
    args = [command] + (["toy@v1"] if command == "report" else [])
    result = cli(*args, "--store", uri)
    assert_one_line_error(result, "invalid store URI", "s3://bucket/prefix")


@pytest.mark.parametrize("command", sorted(AUDIT_COMMANDS) + ["audit"])
def test_unknown_version_names_the_known_ones(cli, store_with_release, command):
    result = cli(command, "toy@v9", *AUDIT_COMMANDS.get(command, []), "--store", store_with_release)
    assert_one_line_error(result, "unknown release toy@v9", "known: toy@v1", "llm2loss register")


def test_unknown_model_names_the_known_ones(cli, store_with_release):
    result = cli("query", "nobody@v1", "a phrase", "--store", store_with_release)
    assert_one_line_error(result, "unknown release nobody@v1", "known: toy@v1")


@pytest.mark.parametrize("command", sorted(AUDIT_COMMANDS))
def test_unfinished_audit_says_how_to_run_it(cli, store_with_release, command):
    result = cli(command, "toy@v1", *AUDIT_COMMANDS[command], "--store", store_with_release)
    assert_one_line_error(result, "audit of toy@v1 is not finished", "llm2loss audit toy@v1")


def test_audit_with_status_other_than_completed_is_not_finished(cli, store_with_release):
    ArtifactStore(store_with_release).write_json("audits/toy/v1/manifest.json", {"status": "running"})
    result = cli("report", "toy@v1", "--store", store_with_release)
    assert_one_line_error(result, "not finished")


@pytest.mark.parametrize("phrases", [[""], ["   "], ["fine", ""]])
def test_empty_phrase_is_refused_by_query(cli, store_with_release, phrases):
    result = cli("query", "toy@v1", *phrases, "--store", store_with_release)
    assert_one_line_error(result, "a phrase is empty")


def test_empty_phrase_is_refused_by_compare(cli, store_with_release):
    result = cli("compare", "toy@v1", "an email", " ", "--store", store_with_release)
    assert_one_line_error(result, "a phrase is empty")


@pytest.mark.parametrize("command", ["query", "compare"])
def test_phrase_over_the_limit_is_refused(cli, store_with_release, command):
    long = "x" * (MAX_PHRASE_CHARS + 1)
    args = [long] if command == "query" else [long, "short"]
    result = cli(command, "toy@v1", *args, "--store", store_with_release)
    assert_one_line_error(result, f"{MAX_PHRASE_CHARS + 1} characters", f"limit of {MAX_PHRASE_CHARS}")


def test_discover_unknown_vocabulary_names_the_built_ins(cli, store_with_release):
    result = cli("discover", "toy@v1", "--vocab", "no_such_vocab", "--store", store_with_release)
    assert_one_line_error(result, "'no_such_vocab'", "email_topics")


def test_discover_empty_vocabulary_file(cli, store_with_release, tmp_path):
    vocab = tmp_path / "empty.txt"
    vocab.write_text("# only a comment\n\n", encoding="utf-8")
    result = cli("discover", "toy@v1", "--vocab", vocab, "--store", store_with_release)
    assert_one_line_error(result, "holds no phrases")


def test_wrong_s3_secret_is_one_line_without_the_secret(cli, s3_server):
    wrong = "definitely-not-the-secret-" + uuid.uuid4().hex
    uri = f"s3://{s3_server.bucket}/cli-{uuid.uuid4().hex[:8]}"
    env = {"AWS_SECRET_ACCESS_KEY": wrong, "AWS_ACCESS_KEY_ID": s3_server.access_key,
           "AWS_ENDPOINT_URL": s3_server.endpoint_url}
    for args in (["releases"], ["query", "toy@v1", "a phrase"], ["report", "toy@v1"]):
        result = cli(*args, "--store", uri, env=env)
        line = assert_one_line_error(result, "S3 refused the credentials", "AWS_SECRET_ACCESS_KEY")
        assert wrong not in line and s3_server.secret_key not in line


def test_releases_and_audits_on_an_empty_store_say_so(cli, tmp_path):
    for command, note in (("releases", "no releases registered"), ("audits", "no completed audits")):
        result = cli(command, "--store", tmp_path / "empty")
        assert result.exit_code == 0 and note in result.stdout
        as_json = cli(command, "--store", tmp_path / "empty", "--json")
        assert json.loads(as_json.stdout) == []


def test_releases_lists_an_unaudited_release(cli, store_with_release):
    rows = json.loads(cli("releases", "--store", store_with_release, "--json").stdout)
    assert [(r["model"], r["version"], r["audited"]) for r in rows] == [("toy", "v1", False)]
    table = cli("releases", "--store", store_with_release)
    assert table.exit_code == 0 and "toy" in table.stdout and "no" in table.stdout


def test_register_missing_and_invalid_release_files(cli, tmp_path):
    missing = cli("register", tmp_path / "nope.json", "--store", tmp_path / "s", "--no-event")
    assert_one_line_error(missing, "does not exist", "release.json")
    bad = tmp_path / "release.json"
    bad.write_text(json.dumps({"model": "m", "version": "v/1"}), encoding="utf-8")
    result = cli("register", bad, "--store", tmp_path / "s", "--no-event")
    assert_one_line_error(result, "not a valid release.json", "entrypoint", "dataset")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    assert_one_line_error(cli("register", broken, "--store", tmp_path / "s", "--no-event"),
                          "not a valid release.json")


def test_register_a_changed_version_is_refused(cli, tmp_path):
    store = tmp_path / "store"
    first = write_release_file(tiny_release(), tmp_path / "a")
    assert cli("register", first, "--store", store, "--no-event").exit_code == 0
    changed = tiny_release().model_copy(update={"task": "multiclass"})
    result = cli("register", write_release_file(changed, tmp_path / "b"), "--store", store, "--no-event")
    assert_one_line_error(result, "already exists with different content")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_register_keeps_the_release_when_the_prefect_api_is_unreachable(cli, tmp_path):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    path = write_release_file(tiny_release(), tmp_path)
    with temporary_settings({PREFECT_API_URL: f"http://127.0.0.1:{_closed_port()}/api"}):
        result = cli("register", path, "--store", tmp_path / "store")
    assert result.exit_code == 0, result.stderr
    assert "registered toy@v1" in result.stdout
    note = result.stderr.strip().splitlines()
    assert len(note) == 1 and note[0].startswith("note: could not emit llm2loss.release.registered")
    assert "llm2loss audit toy@v1" in note[0]
    assert registry.get(ArtifactStore(str(tmp_path / "store")), "toy", "v1").model == "toy"


def test_register_without_a_prefect_api_says_no_event_was_sent(cli, tmp_path):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    path = write_release_file(tiny_release(), tmp_path)
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        result = cli("register", path, "--store", tmp_path / "store")
    assert result.exit_code == 0, result.stderr
    assert "no Prefect API is configured" in result.stderr
    assert registry.list_releases(ArtifactStore(str(tmp_path / "store")))[0].ref == "toy@v1"


def test_json_output_is_strict_json():
    value = {"a": float("nan"), "b": [1.5, float("inf")], "c": Path("/x")}
    import numpy as np

    value["d"] = np.float32(0.5)
    value["e"] = np.int64(3)
    assert json.loads(json.dumps(jsonable(value), allow_nan=False)) == {
        "a": None, "b": [1.5, None], "c": "/x", "d": 0.5, "e": 3}


def test_empty_store_option_is_refused(cli):
    assert_one_line_error(cli("releases", "--store", ""), "--store is empty")


def test_bad_environment_setting_names_the_variable(cli, tmp_path):
    result = cli("releases", "--store", tmp_path, env={"LLM2LOSS_AUDIT__SHARD_SIZE": "zero"})
    assert_one_line_error(result, "LLM2LOSS_AUDIT__SHARD_SIZE", "valid integer")


def _finished(store: str, model: str, version: str, changes: dict | None = None) -> None:
    """A completed audit manifest for a registered release, as the audit writes it, then changed."""
    if not ArtifactStore(store).exists(f"releases/{model}/{version}/release.json"):
        registry.register(ArtifactStore(store), tiny_release(model, version))
    report = f"audits/{model}/{version}/report"
    manifest = {"model": model, "version": version, "status": "completed", "completed_at": "2026-01-01T00:00:00",
                "report": f"{report}/index.html", "metrics": f"{report}/metrics.json", **(changes or {})}
    ArtifactStore(store).write_json(f"audits/{model}/{version}/manifest.json", manifest)


@pytest.mark.parametrize("tamper", [
    {"report": "../../../etc/passwd"},  # a key outside the audit's report folder
    {"model": "someone-else"},  # the manifest of another release copied here
])
def test_listings_skip_a_tampered_manifest_with_a_warning(cli, store_with_release, tamper):
    _finished(store_with_release, "toy", "v1")  # a good audit beside the tampered one
    _finished(store_with_release, "toy", "v2", tamper)
    for as_json in (True, False):
        result = cli("audits", "--store", store_with_release, *(["--json"] if as_json else []))
        assert result.exit_code == 0, result.stderr
        warning = result.stderr.strip().splitlines()
        assert len(warning) == 1 and warning[0].startswith("warning: skipping the audit of toy@v2: ")
        assert "cannot be trusted" in warning[0] or "invalid" in warning[0], warning[0]
        if as_json:
            assert [a["version"] for a in json.loads(result.stdout)] == ["v1"]
        else:
            assert "v1" in result.stdout and "v2" not in result.stdout
    listed = cli("releases", "--store", store_with_release, "--json")
    assert listed.exit_code == 0 and listed.stderr.startswith("warning: skipping the audit of toy@v2")
    assert [(r["version"], r["audited"]) for r in json.loads(listed.stdout)] == [("v1", True), ("v2", False)]
    assert_one_line_error(cli("report", "toy@v2", "--store", store_with_release), "cannot be trusted")


def test_unexpected_failure_is_one_line_and_debug_shows_it(cli, store_with_release, monkeypatch):
    """A bug (here an AttributeError planted in the report lookup) is no expected error: still one
    line. (A manifest that is not a JSON object used to be that bug; it is now a StoreError.)"""
    def bug(*_args, **_kwargs):
        raise AttributeError("'list' object has no attribute 'get'")

    monkeypatch.setattr("llm2loss.audits.finished_manifest", bug)
    result = cli("report", "toy@v1", "--store", store_with_release)
    assert_one_line_error(result, "unexpected AttributeError", "LLM2LOSS_DEBUG=1")
    debug = cli("report", "toy@v1", "--store", store_with_release, env={"LLM2LOSS_DEBUG": "1"})
    assert isinstance(debug.exception, AttributeError)


@pytest.mark.parametrize("command", sorted(AUDIT_COMMANDS) + ["audit"])
def test_json_errors_are_a_json_object_on_stdout(cli, store_with_release, command):
    result = cli(command, "toy@v9", *AUDIT_COMMANDS.get(command, []), "--store", store_with_release, "--json")
    assert result.exit_code == 1
    error = json.loads(result.stdout)
    assert error["type"] == "NotFoundError" and "unknown release toy@v9" in error["error"]
    assert result.stderr == ""


def test_json_error_of_a_bad_setting_is_json(cli, tmp_path):
    result = cli("releases", "--store", tmp_path, "--json", env={"LLM2LOSS_AUDIT__SHARD_SIZE": "zero"})
    assert result.exit_code == 1
    assert json.loads(result.stdout)["type"] == "ConfigError"


@pytest.mark.parametrize(("args", "needle"), [
    (["query"], "Missing argument"),
    (["query", "toy@v1"], "Missing argument"),
    (["compare", "toy@v1", "only one"], "Missing argument"),
    (["releases", "--bogus"], "No such option: --bogus"),
    (["no-such-command"], "No such command"),
    (["discover", "toy@v1", "--top-k", "0"], "--top-k"),
    (["gate", "toy@v1", "--max-error-rise", "-1"], "--max-error-rise"),
])
def test_usage_errors_are_one_line(cli, args, needle):
    result = cli(*args)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], result.stderr
    assert "--help" in lines[0] and "╭" not in result.stderr + result.stdout
