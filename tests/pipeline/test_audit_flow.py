"""End-to-end audits through the real Prefect server, a real SeaweedFS and a Dask LocalCluster.

A small slice of the SpamAssassin corpus and the two example spam-filter releases go through the
whole pipeline: the first audit lands in S3 with a manifest, the second release reuses the first's
embeddings (no embed task runs at all), a rerun of a finished audit does nothing, and the
`llm2loss.release.registered` event really triggers the served `audit-release` deployment.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName, FlowRunFilterId

from llm2loss import audits
from llm2loss import pipeline as stages
from llm2loss import registry
from llm2loss.store import keys as layout
from llm2loss.config import AuditSettings, DaskSettings, DatasetSpec, DiagnoserSettings, Settings, StoreSettings

pytestmark = pytest.mark.integration

LIMIT = 240
REPO = Path(__file__).resolve().parents[2]


def small_settings(store: StoreSettings, dask_address: str, cache_dir: Path) -> Settings:
    """Few members, small shards: the whole pipeline, fast."""
    return Settings(
        store=store,
        dask=DaskSettings(address=dask_address),
        audit=AuditSettings(shard_size=80, diagnosers=DiagnoserSettings(n_members=3)),
        cache_dir=str(cache_dir),
    )


@pytest.fixture(scope="module")
def spam_weights(cache_dir, tmp_path_factory):
    """The two example spam-filter releases trained on a small slice (once per module)."""
    from llm2loss.example_models.spam import train_spam_releases

    spec = DatasetSpec(name=f"spamassassin-{LIMIT}", kind="spamassassin", limit=LIMIT)
    source = stages.get_source(spec, str(cache_dir))
    return train_spam_releases(source, tmp_path_factory.mktemp("weights"), dataset=spec)


def flow_task_names(flow_run_id) -> list[str]:
    """Names of the task runs of one flow run, read back from the Prefect server."""
    from prefect.client.schemas.filters import FlowRunFilter as F

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=F(id=FlowRunFilterId(any_=[flow_run_id])))
    return [r.name for r in runs]


def run_flow(cfg: Settings, model: str, version: str):
    from flows.audit import audit_release
    from flows.runtime import make_task_runner

    flow = audit_release.with_options(task_runner=make_task_runner(cfg.dask))
    state = flow(model=model, version=version, settings=cfg.model_dump(mode="json"), return_state=True)
    assert state.is_completed(), state.message
    return state.state_details.flow_run_id, state.result()


def test_audits_land_in_s3_reuse_embeddings_and_rerun_does_nothing(
    prefect_server, s3_store, dask_cluster, cache_dir, spam_weights
):
    store_settings = StoreSettings(uri=s3_store.uri, endpoint_url=s3_store.endpoint_url)
    cfg = small_settings(store_settings, dask_cluster.scheduler_address, cache_dir)
    store = stages.get_store(store_settings)
    for release, weights in spam_weights:
        registry.register(store, release, weights_file=weights)

    run1, manifest1 = run_flow(cfg, "spam-filter", "v1")
    assert manifest1["status"] == "completed"
    assert store.exists(layout.audit_manifest_key("spam-filter", "v1"))
    assert store.exists(manifest1["report"]) and store.exists(manifest1["metrics"])
    emb = store.read_stage_manifest(manifest1["embeddings"])
    losses = store.read_stage_manifest(manifest1["losses"])
    n_parts = -(-LIMIT // 80)
    assert len(emb["parts"]) == n_parts and len(losses["parts"]) == n_parts
    ids = store.read_stage_table(manifest1["losses"]).column("id").to_pylist()
    assert len(ids) == len(set(ids)) == manifest1["summary"]["samples_used"]
    compute, stages_s = manifest1["summary"]["shard_compute_seconds"], manifest1["summary"]["stage_seconds"]
    assert 0 < compute["embed"] and 0 < compute["losses"]      # the shard tasks' own encoder/model time
    assert compute["embed"] <= stages_s["embed"] * cfg.dask.n_workers * 1.01  # within the stage's wall
    names1 = flow_task_names(run1)
    assert sum(n.startswith("embed-") for n in names1) == n_parts
    assert sum(n.startswith("loss-") for n in names1) == n_parts

    # v2 on the same dataset and encoder: embeddings are reused, the encoder never runs a shard.
    run2, manifest2 = run_flow(cfg, "spam-filter", "v2")
    assert manifest2["embeddings"] == manifest1["embeddings"]
    assert manifest2["summary"]["shard_compute_seconds"]["embed"] == 0  # nothing was embedded
    names2 = flow_task_names(run2)
    assert not [n for n in names2 if n.startswith("embed-")]
    assert sum(n.startswith("loss-") for n in names2) == n_parts
    assert store.exists(manifest2["report"].rsplit("/", 1)[0] + "/regression.json")
    assert audits.unaudited(store) == []

    # Each worker process built the encoder and the models once and reused them across shards.
    from distributed import Client

    def cache_counts():
        from llm2loss.pipeline import workers as a

        return {"encoder": a.get_encoder.cache_info().hits, "model": a._model.cache_info().hits}

    with Client(dask_cluster.scheduler_address) as client:
        counts = client.run(cache_counts)
        hits = {k: sum(c[k] for c in counts.values()) for k in ("encoder", "model")}
    # 3 loss shards of v2 on 2 workers: at least one worker served a second shard from its cache.
    assert hits["model"] >= 1 and hits["encoder"] >= 1

    # A rerun of a finished audit does nothing: no task runs at all.
    run3, manifest3 = run_flow(cfg, "spam-filter", "v1")
    assert manifest3 == manifest1
    assert flow_task_names(run3) == []


def test_release_registered_event_triggers_the_served_deployment(
    prefect_server, tmp_path, dask_cluster, cache_dir, spam_weights
):
    """The path users take: `llm2loss register` (which emits the event with flows.events, the one
    emitter) runs the served `audit-release` deployment."""
    from prefect.logging.configuration import ensure_logging_setup
    from prefect.settings import PREFECT_API_URL
    from typer.testing import CliRunner

    from app.cli import app

    store_settings = StoreSettings(uri=str(tmp_path / "store"))
    release, weights = spam_weights[0]
    release_file = tmp_path / "release.json"
    release_file.write_text(release.model_dump_json(), encoding="utf-8")
    env = dict(os.environ)
    env.update({
        "PREFECT_API_URL": PREFECT_API_URL.value(),
        "LLM2LOSS_STORE__URI": store_settings.uri,
        "LLM2LOSS_DASK__ADDRESS": dask_cluster.scheduler_address,
        "LLM2LOSS_AUDIT__SHARD_SIZE": "80",
        "LLM2LOSS_AUDIT__DIAGNOSERS__N_MEMBERS": "3",
        "LLM2LOSS_CACHE_DIR": str(cache_dir),
        "PYTHONPATH": str(REPO),
    })
    server = subprocess.Popen([sys.executable, "-m", "flows.serve"], cwd=REPO, env=env)
    try:
        deployment_id = _wait_for_deployment("audit-release", timeout_s=60)
        time.sleep(3)  # let the trigger's automation be loaded by the server
        ensure_logging_setup()  # Prefect's handlers bound outside the runner's captured stderr
        result = CliRunner().invoke(app, ["register", str(release_file), "--weights", str(weights),
                                          "--store", store_settings.uri], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert f"emitted llm2loss.release.registered for {release.ref}" in result.output
        run = _wait_for_run(deployment_id, timeout_s=240)
        assert run.state.is_completed(), run.state.message
        assert run.parameters == {"model": release.model, "version": release.version}
        assert audits.finished_manifest(stages.get_store(store_settings), release.model, release.version) is not None
    finally:
        server.terminate()  # our own child, by its handle; killed if SIGTERM is slow under load
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=30)


def _wait_for_deployment(name: str, timeout_s: float):
    deadline = time.monotonic() + timeout_s
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            found = client.read_deployments(deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[name])))
            if found:
                return found[0].id
            time.sleep(1)
    raise AssertionError(f"deployment {name} was not served within {timeout_s} s")


def _wait_for_run(deployment_id, timeout_s: float):
    deadline = time.monotonic() + timeout_s
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            runs = client.read_flow_runs(deployment_filter=DeploymentFilter(id={"any_": [deployment_id]}))
            if runs and runs[0].state is not None and runs[0].state.is_final():
                return runs[0]
            time.sleep(2)
    raise AssertionError(f"no finished run of the triggered deployment within {timeout_s} s")
