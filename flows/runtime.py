"""What the flows run on, built when a flow RUNS, never at import: the Dask task runner, one
LocalCluster shared by several audits, and one temporary Prefect API for a process and its workers.

`SettingsDaskTaskRunner` is the audit flow's default task runner: it reads `LLM2LOSS_DASK__*`
when the flow run starts, so importing `flows.audit` (or `flows.query`, or `flows.serve`) never
reads the environment, and a bad variable fails the run that needs it, with its message.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from prefect_dask import DaskTaskRunner

from llm2loss.config import DaskSettings, Settings


def load_settings(overrides: dict[str, Any] | None) -> Settings:
    """Settings from the environment, with a flow parameter's overrides on top."""
    base = Settings().model_dump()
    for section, values in (overrides or {}).items():
        if isinstance(values, dict) and isinstance(base.get(section), dict):
            base[section].update(values)
        else:
            base[section] = values
    return Settings.model_validate(base)


def local_cluster_kwargs(dask_settings: DaskSettings) -> dict[str, Any]:
    """Keyword arguments of the LocalCluster the settings describe (loopback only)."""
    kwargs: dict[str, Any] = {
        "n_workers": dask_settings.n_workers,
        "threads_per_worker": dask_settings.threads_per_worker,
        "processes": True,
        "host": "127.0.0.1",
        "dashboard_address": "127.0.0.1:0",  # loopback only (None still opens 0.0.0.0:8787)
    }
    if dask_settings.gpu:
        kwargs["resources"] = {"GPU": 1}
    return kwargs


def make_task_runner(dask_settings: DaskSettings) -> DaskTaskRunner:
    """A DaskTaskRunner on an existing cluster (address) or a LocalCluster sized by settings."""
    if dask_settings.address:
        return DaskTaskRunner(address=dask_settings.address)
    return DaskTaskRunner(cluster_class="distributed.LocalCluster",
                          cluster_kwargs=local_cluster_kwargs(dask_settings))


class SettingsDaskTaskRunner(DaskTaskRunner):
    """A DaskTaskRunner configured from the environment's Dask settings when a flow run starts
    (a deployment run: the CLI and tests pass `make_task_runner(...)` instead)."""

    def __init__(self) -> None:
        super().__init__()

    def duplicate(self) -> SettingsDaskTaskRunner:
        return type(self)()

    def __enter__(self) -> DaskTaskRunner:
        configured = make_task_runner(Settings().dask)
        self.address = configured.address
        self.cluster_class = configured.cluster_class
        self.resolved_cluster_class = configured.resolved_cluster_class
        self.cluster_kwargs = configured.cluster_kwargs
        return super().__enter__()


def share_local_prefect_api() -> str | None:
    """Point this process and the Dask workers it spawns at one Prefect API; return its URL.

    Without PREFECT_API_URL, Prefect starts a temporary local server in each process on first use,
    so every Dask worker process would start its own (seconds of start-up each, several servers
    writing one SQLite file). Start that server once here and export its URL before the cluster
    starts; workers then report to it. Does nothing when an API URL is configured or ephemeral
    servers are disabled. Returns the URL exported, else None.
    """
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

    if PREFECT_API_URL.value() or os.environ.get("PREFECT_API_URL"):
        return None
    if not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        return None
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()  # the same instance Prefect's own client uses in this process
    server.start()
    os.environ["PREFECT_API_URL"] = server.api_url
    return server.api_url


@contextlib.contextmanager
def shared_local_cluster(cfg: Settings) -> Iterator[Settings]:
    """Settings whose Dask address is one LocalCluster kept for the whole `with` block.

    Auditing several releases in a row then starts the workers once: they keep the encoder and
    the dataset they loaded (per-process caches), so a second audit does not pay for process
    start-up, imports and loading the encoder again (each release's own model is loaded anew).
    Settings that already name a cluster are yielded unchanged. The local Prefect API is shared
    first, so the workers report to it.
    """
    if cfg.dask.address:
        yield cfg
        return
    from distributed import LocalCluster

    share_local_prefect_api()
    with LocalCluster(**local_cluster_kwargs(cfg.dask)) as cluster:
        dask_settings = cfg.dask.model_copy(update={"address": cluster.scheduler_address})
        yield cfg.model_copy(update={"dask": dask_settings})
