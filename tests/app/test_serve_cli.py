"""`llm2loss serve` as a user starts it, and `query` / `compare` / `discover --server`.

The service is started as a child process (`python -m app.cli serve --port 0`), asked over
HTTP, and ended by its PID. The --server answers must be the in-process ones (same --json
output; the service answers in torch, a cold in-process command in numpy, so numbers agree to
1e-5); every failure is one `error:` line and exit 1.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from serve_helpers import MODEL, UNAUDITED, assert_same_json
from typer.testing import CliRunner, Result

from app.cli import app

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]

REPO = Path(__file__).resolve().parents[2]
REF = f"{MODEL}@v1"


def run(*args: Any, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200", **(env or {})})


def assert_one_line_error(result: Result, *needles: str) -> str:
    assert result.exit_code == 1, (result.exit_code, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(REPO), env.get("PYTHONPATH", "")] if p)
    return env


def start_serve(*args: str) -> tuple[subprocess.Popen, str]:
    """`llm2loss serve ARGS` as a child process; (process, the first line it printed)."""
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env())
    return proc, (proc.stdout.readline() if proc.stdout else "")


def stop(proc: subprocess.Popen) -> tuple[int, str]:
    """End the child by its PID (SIGTERM, as a service manager does); (exit status, its stderr)."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
    _, stderr = proc.communicate(timeout=30)
    return proc.returncode, stderr


@pytest.fixture(scope="module")
def served(served_store) -> Iterator[str]:
    """`llm2loss serve --port 0 --store S` running as a child process; its base URL."""
    proc, line = start_serve("--port", "0", "--store", served_store.uri)
    try:
        assert line.startswith("llm2loss serve: http://127.0.0.1:"), (line, proc.poll())
        assert served_store.uri in line
        yield line.split(" ")[2].rstrip("/")
    finally:
        status, stderr = stop(proc)
        # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit says what ended it
        assert status in (0, -signal.SIGTERM) and "Traceback" not in stderr, (status, stderr)


def test_the_served_page_and_audits(served):
    assert "<title>llm2loss" in httpx.get(served + "/", timeout=60).text
    refs = [a["ref"] for a in httpx.get(served + "/api/audits", timeout=60).json()["audits"]]
    assert refs == [f"{MODEL}@v1", f"{MODEL}@v2"]


def _same_json(remote: Result, local: Result) -> Any:
    assert remote.exit_code == 0, remote.stderr
    assert local.exit_code == 0, local.stderr
    assert_same_json(json.loads(local.stdout), json.loads(remote.stdout))
    return json.loads(remote.stdout)


def test_query_with_server_answers_as_in_process(served, served_store):
    phrases = ["an email written in HTML", "a message from a mailing list"]
    remote = run("query", REF, *phrases, "--json", "--server", served)
    rows = _same_json(remote, run("query", REF, *phrases, "--json", "--store", served_store.uri))
    assert [r["phrase"] for r in rows] == phrases
    table = run("query", REF, phrases[0], "--server", served)
    # the table is in the report's units (raw scores stay in --json), as in-process
    assert table.exit_code == 0 and phrases[0] in table.stdout and "percentile" in table.stdout
    assert table.stdout == run("query", REF, phrases[0], "--store", served_store.uri).stdout


def test_compare_and_discover_with_server_answer_as_in_process(served, served_store):
    a, b = "an email written in HTML", "a plain-text email"
    row = _same_json(run("compare", REF, a, b, "--json", "--server", served),
                     run("compare", REF, a, b, "--json", "--store", served_store.uri))
    assert row["phrase_a"] == a and "sentence" in row
    for extra in ([], ["--vocab", "email_topics"]):
        found = _same_json(run("discover", REF, *extra, "--top-k", "3", "--json", "--server", served),
                           run("discover", REF, *extra, "--top-k", "3", "--json", "--store", served_store.uri))
        assert found["vocabulary"] and len(found["highest_loss"]) == 3


def test_the_server_can_come_from_the_environment(served):
    result = run("query", REF, "a receipt", "--json", env={"LLM2LOSS_SERVER": served})
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)[0]["phrase"] == "a receipt"


def test_server_errors_are_one_line(served):
    assert_one_line_error(run("query", f"{MODEL}@{UNAUDITED}", "x", "--server", served),
                          f"llm2loss audit {MODEL}@{UNAUDITED}")
    assert_one_line_error(run("query", "nobody@v1", "x", "--server", served), "nobody", MODEL)
    assert_one_line_error(run("compare", REF, "x", " ", "--server", served), "a phrase is empty")
    assert_one_line_error(run("query", REF, "x", "--server", served, "--store", "/tmp/s"),
                          "--store and --server both given")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_server_is_one_line():
    url = f"http://127.0.0.1:{_free_port()}"
    for args in (["query", REF, "x"], ["compare", REF, "a", "b"], ["discover", REF]):
        assert_one_line_error(run(*args, "--server", url), "cannot reach the llm2loss server", url)
    assert_one_line_error(run("query", REF, "x", env={"LLM2LOSS_SERVER": "localhost:1"}), "not an http URL")


def test_serve_refuses_a_non_loopback_host(tmp_path):
    result = run("serve", "--host", "0.0.0.0", "--store", tmp_path)
    assert_one_line_error(result, "not a loopback address", "--host 127.0.0.1")


def test_serve_on_a_taken_port_is_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("serve", "--port", str(port), "--store", tmp_path)
    assert_one_line_error(result, f"cannot listen on 127.0.0.1:{port}", "--port")


def test_serve_help_has_an_example():
    result = run("serve", "--help")
    assert result.exit_code == 0 and "llm2loss serve --port 8765" in result.stdout
    assert "--server" in run("query", "--help").stdout


HEAVY = ("torch", "sentence_transformers", "llm2loss.query", "llm2loss.pipeline.shards", "llm2loss.pipeline.train")
ASK_AND_LIST_IMPORTS = (
    "import sys\n"
    "from app.cli import app\n"
    "try:\n"
    "    app(sys.argv[1:])\n"
    "except SystemExit as exc:\n"
    "    code = exc.code\n"
    f"print('loaded:', [m for m in {HEAVY!r} if m in sys.modules], 'exit:', code)\n"
)


@pytest.mark.parametrize("args", [["query", REF, "a receipt"], ["compare", REF, "a receipt", "a newsletter"],
                                  ["discover", REF, "--top-k", "2"]])
def test_asking_a_server_loads_no_model_code(served, args):
    done = subprocess.run([sys.executable, "-c", ASK_AND_LIST_IMPORTS, *args, "--json", "--server", served],
                          capture_output=True, text=True, env=child_env(), timeout=300, check=False)
    last = done.stdout.strip().splitlines()[-1]
    assert last == "loaded: [] exit: 0", (last, done.stderr[-2000:])
