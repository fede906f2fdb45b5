"""`llm2loss.pipeline.run_audit` audits a release with no orchestrator: the serial shard map, in a
process that never imports Prefect, Dask, flows or tasks; and its manifest says what the Prefect
flow's manifest of the same release says (the same fields, identity, stage keys and counts).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "faults"))
from audit_harness import local_audit_setup, run_flow  # noqa: E402

pytestmark = pytest.mark.integration

ORCHESTRATION = ("prefect", "prefect_dask", "dask", "distributed", "flows", "tasks")
LIBRARY_AUDIT = (
    "import json, sys\n"
    "from llm2loss import registry\n"
    "from llm2loss.config import Settings\n"
    "from llm2loss.pipeline import get_store, run_audit\n"
    "cfg = Settings.model_validate_json(sys.argv[1])\n"
    "release = registry.get(get_store(cfg.store), sys.argv[2], sys.argv[3])\n"
    "manifest = run_audit(release, cfg)\n"
    f"loaded = sorted(m for m in {ORCHESTRATION!r} if m in sys.modules)\n"
    "print(json.dumps({'manifest': manifest, 'loaded': loaded}))\n"
)
# Measured or stamped at run time: the only fields allowed to differ between two audits.
TIMED = {"completed_at"}
TIMED_SUMMARY = {"created_at", "stage_seconds", "shard_compute_seconds"}


def _library_audit(cfg, model: str, version: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", LIBRARY_AUDIT, cfg.model_dump_json(), model, version],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_library_audit_writes_the_manifest_the_flow_writes(services, tmp_path, cache_dir, spam_releases):
    release, _ = spam_releases[0]
    lib_cfg, lib_store = local_audit_setup(tmp_path / "lib", services.scheduler_address, cache_dir, spam_releases[:1])
    flow_cfg, flow_store = local_audit_setup(tmp_path / "flow", services.scheduler_address, cache_dir,
                                             spam_releases[:1])

    child = _library_audit(lib_cfg, release.model, release.version)
    assert child["loaded"] == [], f"the library audit imported {child['loaded']}"
    library = child["manifest"]
    _, state = run_flow(flow_cfg, release.model, release.version)
    flow = state.result()

    assert set(library) == set(flow) and set(library["summary"]) == set(flow["summary"])
    assert {k: v for k, v in library.items() if k not in TIMED | {"summary"}} == \
        {k: v for k, v in flow.items() if k not in TIMED | {"summary"}}
    assert {k: v for k, v in library["summary"].items() if k not in TIMED_SUMMARY} == \
        {k: v for k, v in flow["summary"].items() if k not in TIMED_SUMMARY}
    assert library["status"] == "completed" and library["summary"]["samples_used"] > 0
    # Every artifact the manifest names exists, and both audits trained the same diagnosers.
    for key in (library["report"], library["metrics"]):
        assert lib_store.exists(key) and flow_store.exists(key)
    def trained(store, manifest):
        return [row["diagnoser"] for row in store.read_json(manifest["metrics"])["validity"]]

    assert trained(lib_store, library) == trained(flow_store, flow) == ["rank-linear"]
    assert lib_store.read_stage_manifest(library["losses"])["parts"] == \
        flow_store.read_stage_manifest(flow["losses"])["parts"]
