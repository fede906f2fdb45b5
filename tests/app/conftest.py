"""Fixtures of the query-service tests: real finished audits and a real running service.

- `served_store` (session): a local folder store where the example spam filters v1 and v2 (the
  160-email SpamAssassin slice of the fault tests) are registered and audited through the real
  Prefect flow on the session's Dask LocalCluster, with small rank and familiarity MLP ensembles;
  a third release, v3, is registered and never audited (the "unfinished audit" case).
- `service` (session): `create_app` over that store, served by uvicorn on a free 127.0.0.1 port
  in a background thread (`running_service`); its URL and app. Stopped at the end of the session.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from serve_helpers import UNAUDITED, Service, running_service

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "faults"))

from audit_harness import small_settings  # noqa: E402

from llm2loss.config import DiagnoserSettings, Settings, StoreSettings  # noqa: E402


@dataclass(frozen=True)
class ServedStore:
    """A store with finished audits of MODEL v1 and v2 and an unaudited v3; its settings."""

    settings: Settings
    uri: str


@pytest.fixture(scope="session")
def served_store(prefect_server, dask_cluster, cache_dir, spam_releases, tmp_path_factory) -> ServedStore:
    """Register spam-filter v1, v2 (audited through the flow) and v3 (never audited)."""
    from flows.audit import run_audit_flow
    from llm2loss import pipeline as stages
    from llm2loss import registry

    uri = str(tmp_path_factory.mktemp("served") / "store")
    cfg = small_settings(
        StoreSettings(uri=uri), dask_cluster.scheduler_address, cache_dir,
        diagnosers=DiagnoserSettings(objectives=["rank", "familiarity"], archs=["mlp"], n_members=3),
    )
    store = stages.get_store(cfg.store)
    for release, weights in spam_releases:
        registry.register(store, release, weights_file=weights)
    for release, _ in spam_releases:
        run_audit_flow(release.model, release.version, cfg)
    v2, v2_weights = spam_releases[1]
    registry.register(store, v2.model_copy(update={"version": UNAUDITED}), weights_file=v2_weights)
    return ServedStore(settings=cfg, uri=uri)


@pytest.fixture(scope="session")
def service(served_store: ServedStore) -> Iterator[Service]:
    """The service over `served_store` on a free loopback port."""
    with running_service(served_store.settings) as running:
        yield running
