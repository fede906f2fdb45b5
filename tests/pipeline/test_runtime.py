"""The flows' runtime is built when a flow runs, not at import: a bad LLM2LOSS_ variable does not
break `import flows.audit` / `flows.query` / `flows.serve`, and the audit flow's default task
runner reads the Dask settings of the environment when its run starts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("module", ["flows.query", "flows.audit", "flows.serve"])
def test_a_bad_environment_variable_does_not_break_importing_a_flow(module: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "LLM2LOSS_DASK__N_WORKERS": "not-a-number",
           "LLM2LOSS_AUDIT__SHARD_SIZE": "-x"}
    done = subprocess.run([sys.executable, "-c", f"import {module}"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_bad_variable_fails_the_run_that_reads_it(monkeypatch) -> None:
    from pydantic import ValidationError

    from flows.runtime import SettingsDaskTaskRunner

    monkeypatch.setenv("LLM2LOSS_DASK__N_WORKERS", "not-a-number")
    with pytest.raises(ValidationError, match="n_workers"):
        with SettingsDaskTaskRunner().duplicate():
            pass


def test_the_default_task_runner_reads_the_dask_settings_when_the_run_starts(monkeypatch) -> None:
    from flows.audit import audit_release
    from flows.runtime import SettingsDaskTaskRunner

    assert isinstance(audit_release.task_runner, SettingsDaskTaskRunner)
    monkeypatch.setenv("LLM2LOSS_DASK__ADDRESS", "tcp://127.0.0.1:1")
    with audit_release.task_runner.duplicate() as runner:  # what a flow run does; connects lazily
        assert runner.address == "tcp://127.0.0.1:1" and not runner.cluster_kwargs
    monkeypatch.delenv("LLM2LOSS_DASK__ADDRESS")
    monkeypatch.setenv("LLM2LOSS_DASK__N_WORKERS", "3")
    with audit_release.task_runner.duplicate() as runner:
        assert runner.address is None and runner.cluster_kwargs["n_workers"] == 3
        assert runner.cluster_kwargs["host"] == "127.0.0.1"
