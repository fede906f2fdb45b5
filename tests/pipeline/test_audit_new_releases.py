"""The scheduled flow `audit-new-releases`: every unaudited release is audited, on one cluster.

It runs in a child process as on a laptop with no Prefect server configured (no PREFECT_API_URL,
a fresh PREFECT_HOME), over a local store holding the two example spam-filter releases: both get
a completed audit, v2 reuses v1's embeddings, Prefect's temporary server starts once and the
Dask LocalCluster starts once for both audits (its workers keep the encoder and the dataset).
A second run finds nothing to do and starts no cluster at all.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from llm2loss import audits
from llm2loss import pipeline as stages
from llm2loss import registry
from llm2loss.config import StoreSettings

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "faults"))
from audit_harness import small_settings  # noqa: E402

RUN_SCHEDULED_FLOW = (
    "import json, sys; from flows.audit import audit_new_releases; from llm2loss.config import Settings; "
    "print('AUDITED', json.dumps(audit_new_releases(settings=Settings().model_dump(mode='json'))))"
)


def run_scheduled_flow(env: dict[str, str]) -> str:
    """Run the flow in a child process; its stdout and stderr together (asserting it exited 0)."""
    proc = subprocess.run([sys.executable, "-c", RUN_SCHEDULED_FLOW], env=env, capture_output=True,
                          text=True, timeout=600, cwd=REPO)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    return output


def test_audit_new_releases_audits_each_release_once_on_one_cluster(spam_releases, cache_dir, tmp_path: Path):
    store_settings = StoreSettings(uri=str(tmp_path / "store"))
    store = stages.get_store(store_settings)
    for release, weights in spam_releases:
        registry.register(store, release, weights_file=weights)
    cfg = small_settings(store_settings, "", cache_dir)
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL" and not k.startswith("LLM2LOSS_")}
    env.update(PREFECT_LOGGING_LEVEL="INFO", PREFECT_HOME=str(tmp_path / "prefect"), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               LLM2LOSS_STORE__URI=store_settings.uri, LLM2LOSS_AUDIT=cfg.audit.model_dump_json(),
               LLM2LOSS_CACHE_DIR=str(cache_dir), HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))

    output = run_scheduled_flow(env)
    assert 'AUDITED ["spam-filter@v1", "spam-filter@v2"]' in output, output[-3000:]
    assert output.count("Starting temporary server") == 1, output[-3000:]
    assert output.count("Scheduler at:") == 1, output[-3000:]  # one LocalCluster for both audits
    assert "Creating a new Dask cluster" not in output  # no per-flow cluster next to the shared one
    manifests = {v: audits.finished_manifest(stages.get_store(store_settings), "spam-filter", v) for v in ("v1", "v2")}
    assert all(m is not None and m["status"] == "completed" for m in manifests.values())
    assert manifests["v2"]["embeddings"] == manifests["v1"]["embeddings"]
    assert audits.unaudited(store) == []

    again = run_scheduled_flow(env)
    assert "AUDITED []" in again, again[-3000:]
    assert "Scheduler at:" not in again  # nothing to audit: no cluster started
