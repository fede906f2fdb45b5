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
    from llm2loss.demo import run_demo

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

    again = io.StringIO()
    second = run_demo(cfg, limit=200, console=Console(file=again, width=200))
    assert "already registered" in again.getvalue()
    assert second["manifests"] == manifests  # finished audits were returned, not redone
