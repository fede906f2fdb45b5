"""The README's main job, reduced: the demo on a small slice of the corpus, run twice.

The same code path as `make demo` (train and register spam-filter v1 and v2, audit both through
the Prefect flow, print findings, the regression report and the report paths), on 200 emails,
so the demo cannot silently break. The second run must reuse everything.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from llm2loss.config import AuditSettings, DaskSettings, DiagnoserSettings, Settings, StoreSettings

pytestmark = pytest.mark.integration


def test_demo_end_to_end_then_rerun_reuses_everything(prefect_server, dask_cluster, cache_dir, tmp_path: Path):
    from app.demo import run_demo

    cfg = Settings(
        store=StoreSettings(uri=str(tmp_path / "store")),
        dask=DaskSettings(address=dask_cluster.scheduler_address),
        audit=AuditSettings(shard_size=100, diagnosers=DiagnoserSettings(n_members=3)),
        cache_dir=str(cache_dir),
    )
    buffer = io.StringIO()
    result = run_demo(cfg, limit=200, console=Console(file=buffer, width=200))
    text = buffer.getvalue()
    manifests = result["manifests"]
    assert set(manifests) == {"v1", "v2"}
    assert manifests["v2"]["embeddings"] == manifests["v1"]["embeddings"]  # v2 reused v1's embeddings
    assert result["regression"] is not None and result["regression"]["previous"]["version"] == "v1"
    assert "Headline findings of spam-filter@v1" in text and "Headline findings of spam-filter@v2" in text
    for version in ("v1", "v2"):
        report = tmp_path / "store" / manifests[version]["report"]
        assert report.is_file() and str(report) in text.replace("\n", "")
    assert "make ui" in text
    assert "3. Headline findings of spam-filter@v1" in text and "4. Headline findings of spam-filter@v2" in text
    assert "5. Regression report" in text and "\n  1. " in text  # sections and findings numbered once each
    assert "  embed " in text and "shards" in text and "  train and analyse" in text  # stage lines and bars

    again = io.StringIO()
    second = run_demo(cfg, limit=200, console=Console(file=again, width=200))
    assert "already registered" in again.getvalue()
    assert again.getvalue().count("already completed") == 2  # read back: no flow run, no cluster
    assert second["manifests"] == manifests  # finished audits were returned, not redone


def test_demo_without_a_prefect_server_starts_one_temporary_server_for_all_processes(
        cache_dir, tmp_path: Path):
    """`llm2loss demo` on a laptop with no PREFECT_API_URL: Prefect's temporary server is started
    once and the Dask worker processes report to it (before, each worker started its own); one
    LocalCluster serves both audits (before, each audit started and loaded its own workers)."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(PREFECT_LOGGING_LEVEL="INFO", PREFECT_HOME=str(tmp_path / "prefect"), LLM2LOSS_CACHE_DIR=str(cache_dir),
               PREFECT_SERVER_ANALYTICS_ENABLED="false", HF_HUB_OFFLINE="1")
    proc = subprocess.run(
        [sys.executable, "-m", "app.cli", "demo", "--limit", "40", "--store", str(tmp_path / "store")],
        env=env, capture_output=True, text=True, timeout=600, cwd=Path(__file__).resolve().parents[1])
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    # The console has stage lines and findings only; Prefect's and Dask's lines are in the log file.
    assert " | INFO " not in output and "distributed." not in output and "Loading weights" not in output, output[-3000:]
    import re

    log = Path(re.search(r"Prefect and Dask logs: (\S+)\)", output).group(1)).read_text(encoding="utf-8")
    assert log.count("Starting temporary server") == 1, log[-3000:]
    assert log.count("Scheduler at:") == 1, log[-3000:]  # one LocalCluster for both audits
    assert "Headline findings of spam-filter@v2" in output
