"""The audit pipeline as plain functions over the artifact store, with no orchestrator in it.

- `plan`: what an audit computes and where it goes (`AuditPlan`, `plan_audit`);
- `context`: `AuditContext`, the one small value every stage takes (store settings, release,
  cache folder, plan);
- `workers`: per-process caches of the store, source, encoder and model (`get_store`, ...);
- `shards`: the sharded stages and their part/sidecar/manifest protocol;
- `dataset`: the id-hash split and the join of embeddings and losses (`load_audit_data`);
- `train`: diagnosers trained and the analysis run (`train_and_analyse`);
- `publish`: regression report, HTML report, manifest (`audit_summary`, `write_audit_manifest`);
- `locks`: one audit of a release at a time (lock, heartbeat, waiting for a turn);
- `run`: `run_audit`, the order of the stages (serial by default; the Prefect flow maps shards
  onto Dask).

The names below are importable from `llm2loss.pipeline` directly; submodules load on first use,
so importing the package costs nothing until a name is asked for.
"""

from __future__ import annotations

import importlib
from typing import Any

_NAMES = {
    "AuditContext": "context",
    "AuditPlan": "plan", "StageSharding": "shards", "plan_audit": "plan", "encoder_spec_for": "plan",
    "get_store": "workers", "get_source": "workers", "get_encoder": "workers", "get_model": "workers",
    "recorded_sharding": "shards", "begin_stage": "shards", "pending_shards": "shards",
    "seal_stage": "shards", "embed_shard": "shards", "loss_shard": "shards",
    "is_test_id": "dataset", "load_audit_data": "dataset",
    "train_and_analyse": "train",
    "regression_against_previous": "publish", "publish_report": "publish", "audit_summary": "publish",
    "write_audit_manifest": "publish", "uri_for": "publish",
    "run_audit": "run", "serial_map": "run", "run_here": "run",
}

__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    module = _NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'llm2loss.pipeline' has no attribute {name!r}")
    return getattr(importlib.import_module(f"llm2loss.pipeline.{module}"), name)
