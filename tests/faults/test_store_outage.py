"""The S3-compatible server stopped in the middle of an audit and started again.

A dedicated SeaweedFS (its own folder and port) holds the store. Once the first loss part is
listed, the server is stopped by PID and, a few seconds later, started again on the same folder
and port. The S3 client's retries (botocore, with backoff) and the shard tasks' retries (Prefect,
exponential backoff) carry the audit through: it completes, and every id is listed once.
"""

from __future__ import annotations

import threading
import time

import pytest
from audit_harness import done_indices, plan_of, run_flow, small_settings, stage_ids

from llm2loss import pipeline as stages
from llm2loss import registry
from llm2loss.store.keys import manifest_key
from llm2loss.config import StoreSettings

pytestmark = pytest.mark.integration

OUTAGE_S = 4.0


def _outage(service, store, prefix: str, events: dict, timeout_s: float = 420) -> None:
    """Stop the server once a first part of `prefix` is listed; start it again after OUTAGE_S."""
    from infra.seaweedfs import start_seaweedfs, stop_seaweedfs

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not done_indices(store, prefix):
        time.sleep(0.3)
    events["mid_audit"] = not store.exists(manifest_key(prefix))
    events["stopped"] = stop_seaweedfs(service)
    time.sleep(OUTAGE_S)
    port = int(service.url.rsplit(":", 1)[1])
    events["restarted"] = start_seaweedfs(
        service.extra["data_dir"], access_key=events["key"], secret_key=events["secret"],
        bucket=service.extra["bucket"], s3_port=port,
    )


def test_audit_rides_out_an_s3_outage(services, s3_server, tmp_path, cache_dir, spam_releases):
    from infra.seaweedfs import start_seaweedfs, stop_seaweedfs

    release, weights = spam_releases[0]
    slow = release.model_copy(update={
        "version": "outage", "entrypoint": "fault_models:slow_naive_bayes",
        "metadata": {"entrypoint_kwargs": {"delay_s": 1.5}},
    })
    service = start_seaweedfs(tmp_path / "weed", access_key=s3_server.access_key,
                              secret_key=s3_server.secret_key, bucket="outage")
    events: dict = {"key": s3_server.access_key, "secret": s3_server.secret_key}
    try:
        cfg = small_settings(StoreSettings(uri="s3://outage/audits", endpoint_url=service.url),
                             services.scheduler_address, cache_dir, shard_size=20)
        store = stages.get_store(cfg.store)
        registry.register(store, slow, weights_file=weights)
        plan = plan_of(cfg, slow)
        breaker = threading.Thread(target=_outage, args=(service, store, plan.losses_prefix, events))
        breaker.start()
        try:
            _, state = run_flow(cfg, slow.model, slow.version)
        finally:
            breaker.join(timeout=120)
        assert events.get("stopped") and events.get("restarted") and events.get("mid_audit"), events
        ids = stages.get_source(slow.dataset, str(cache_dir)).ids()
        for prefix in (plan.embeddings_prefix, plan.losses_prefix):
            listed = stage_ids(store, prefix)
            assert sorted(listed) == sorted(ids)
        assert state.result()["summary"]["samples_used"] == len(ids)
    finally:
        stop_seaweedfs(events.get("restarted") or service)
