"""Every service the tests and the flows start listens on 127.0.0.1 only.

tests/infra checks SeaweedFS, the session's Dask cluster and the Prefect harness one by one. Here
the LocalCluster that an audit builds for itself (no Dask address configured) is started through
the flow's own task-runner factory, and then every listening socket of this test process and all
of its children (that cluster, SeaweedFS, the Prefect server, ...) is checked.
"""

from __future__ import annotations

import os

import psutil
import pytest

from flows.runtime import make_task_runner
from llm2loss.config import DaskSettings

pytestmark = pytest.mark.integration


def _listening(process: psutil.Process) -> set[tuple[str, int]]:
    try:
        return {(c.laddr.ip, c.laddr.port) for c in process.net_connections(kind="inet")
                if c.status == psutil.CONN_LISTEN}
    except psutil.NoSuchProcess:
        return set()


def test_everything_started_here_listens_on_loopback_only(prefect_server, s3_server):
    me = psutil.Process()
    with make_task_runner(DaskSettings(n_workers=1)) as runner:
        client = runner.client  # the runner builds its LocalCluster on first use
        assert client.scheduler.address.startswith("tcp://127.0.0.1:")
        workers = [psutil.Process(pid) for pid in client.run(os.getpid).values()]
        assert workers, "the flow's LocalCluster started no worker process"
        cluster_sockets = _listening(me) | set().union(*(_listening(p) for p in workers))
        everything = cluster_sockets | set().union(*(_listening(p) for p in me.children(recursive=True)))
    assert len(cluster_sockets) >= 2  # scheduler and worker (and their dashboards)
    assert {ip for ip, _ in everything} == {"127.0.0.1"}, everything
