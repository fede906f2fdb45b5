"""Credentials never leave the environment: not in logs, reports, manifests or Prefect artifacts.

A full audit runs against SeaweedFS with the test credentials in the environment (the only place
they are). Afterwards every object under the audit's store prefix, every log line of the flow run
and its tasks (read back from the Prefect server), the flow run's parameters and every Prefect
artifact are searched for the secret key and the access key id.
"""

from __future__ import annotations

import json

import pytest
from audit_harness import run_flow, small_settings
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, LogFilter, LogFilterFlowRunId

from llm2loss import pipeline as stages
from llm2loss import registry
from llm2loss.config import StoreSettings

pytestmark = pytest.mark.integration


def _texts_of_flow_run(run_id) -> dict[str, str]:
    """Logs, parameters and artifacts of one flow run, as text, by where they came from."""
    with get_client(sync_client=True) as client:
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
        run = client.read_flow_run(run_id)
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id])))
    texts = {f"log {i}": log.message for i, log in enumerate(logs)}
    texts["parameters"] = json.dumps(run.parameters, default=str)
    for artifact in artifacts:
        texts[f"artifact {artifact.key}"] = json.dumps(
            {"data": artifact.data, "description": artifact.description}, default=str)
    return texts


def test_no_credentials_in_logs_reports_manifests_or_artifacts(services, s3_server, s3_store, cache_dir,
                                                               spam_releases):
    release, weights = spam_releases[0]
    cfg = small_settings(StoreSettings(uri=s3_store.uri, endpoint_url=s3_store.endpoint_url),
                         services.scheduler_address, cache_dir)
    store = stages.get_store(cfg.store)
    registry.register(store, release, weights_file=weights)
    run_id, state = run_flow(cfg, release.model, release.version)
    manifest = state.result()

    texts = _texts_of_flow_run(run_id)
    assert sum(k.startswith("log ") for k in texts) > 10, "the flow run's logs were not read back"
    assert any(k.startswith("artifact ") for k in texts), "the audit published no artifact"
    keys = store.list("")
    for name in ("index.html", "report.md", "metrics.json"):
        assert manifest["report"].rsplit("/", 1)[0] + "/" + name in keys
    for key in keys:
        if not key.endswith((".parquet", ".safetensors")):
            texts[key] = store.read_bytes(key).decode("utf-8", errors="replace")
    assert any(k.endswith("manifest.json") for k in texts)
    for secret in (s3_server.secret_key, s3_server.access_key):
        leaks = [where for where, text in texts.items() if secret in text]
        assert not leaks, f"credential found in {leaks}"
