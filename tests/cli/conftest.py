"""Fixtures of the command-line tests: a CliRunner helper and small spam-filter releases."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from cli_helpers import LIMIT
from typer.testing import CliRunner, Result

from app.cli import app
from llm2loss.config import DatasetSpec, ReleaseSpec


@pytest.fixture(scope="session", autouse=True)
def prefect_logging_outside_the_runner() -> None:
    """Configure Prefect's log handlers before any CliRunner call.

    Prefect binds its console handlers to the sys.stderr of the moment it first configures
    logging; inside CliRunner that is the runner's buffer, closed when the call ends, and every
    later Prefect log line would fail. Configured here, they bind to the session's stderr.
    """
    from prefect.logging.configuration import ensure_logging_setup

    ensure_logging_setup()


@pytest.fixture
def cli() -> Callable[..., Result]:
    """Run `llm2loss ARGS...` in-process; stdout and stderr are kept apart."""
    runner = CliRunner()

    def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
        return runner.invoke(app, [str(a) for a in args], env=env, catch_exceptions=True)

    return invoke


@pytest.fixture(scope="session")
def spam_releases(cache_dir, tmp_path_factory) -> list[tuple[ReleaseSpec, Path]]:
    """The example spam filters v1 and v2 trained on a small SpamAssassin slice (once)."""
    from llm2loss import pipeline as stages
    from llm2loss.example_models.spam import train_spam_releases

    spec = DatasetSpec(name=f"spamassassin-{LIMIT}", kind="spamassassin", limit=LIMIT)
    source = stages.get_source(spec, str(cache_dir))
    return train_spam_releases(source, tmp_path_factory.mktemp("cli-weights"), dataset=spec)
