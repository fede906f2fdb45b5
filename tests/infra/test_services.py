"""The infra scripts start real services on 127.0.0.1 only, and stop only what they started."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from infra import stack
from infra.processes import (
    ServiceError,
    free_port,
    is_running,
    listening_addresses,
    port_is_free,
    spawn,
    start_and_wait,
    stop,
    wait_until,
)
from infra.seaweedfs import start_seaweedfs

REPO = Path(__file__).resolve().parents[2]


def _only_loopback(pid: int) -> set[tuple[str, int]]:
    addresses = listening_addresses(pid)
    assert addresses, f"process {pid} listens on nothing"
    assert {ip for ip, _ in addresses} == {"127.0.0.1"}, addresses
    return addresses


def test_seaweedfs_listens_on_loopback_only(s3_server) -> None:
    addresses = _only_loopback(s3_server.pid)
    assert int(s3_server.endpoint_url.rsplit(":", 1)[1]) in {port for _, port in addresses}


def test_dask_local_cluster_listens_on_loopback_only(dask_cluster) -> None:
    from distributed import Client

    assert dask_cluster.scheduler_address.startswith("tcp://127.0.0.1:")
    with Client(dask_cluster) as client:
        pids = client.run(os.getpid)
    assert len(pids) == 2
    for pid in pids.values():
        _only_loopback(pid)


def test_free_port_honours_offsets() -> None:
    port = free_port(offsets=(0, 10000))
    assert port_is_free(port) and port_is_free(port + 10000)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        assert not port_is_free(s.getsockname()[1])


def test_seaweedfs_on_a_taken_port_fails_clearly(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(ServiceError, match="SeaweedFS"):
            start_seaweedfs(tmp_path, access_key="k", secret_key="s", s3_port=port, timeout=20)


def test_wait_until_reports_a_dead_process_with_its_log(tmp_path: Path) -> None:
    log = tmp_path / "svc.log"
    proc = spawn(
        [sys.executable, "-c", "print('bad config: no port'); raise SystemExit(3)"], log_path=log
    )
    proc.wait()
    with pytest.raises(ServiceError, match="exited during start-up(.|\n)*bad config: no port"):
        wait_until(lambda: False, what="svc", timeout=10, pid=proc.pid, log_path=log)


def test_wait_until_times_out_clearly(tmp_path: Path) -> None:
    proc = spawn([sys.executable, "-c", "import time; time.sleep(30)"], log_path=tmp_path / "l")
    try:
        with pytest.raises(ServiceError, match="did not become healthy within 1 s"):
            wait_until(lambda: False, what="svc", timeout=1, pid=proc.pid, log_path=tmp_path / "l")
    finally:
        assert stop(proc.pid, "time.sleep")
        proc.wait()
    assert not is_running(proc.pid)


def test_start_and_wait_leaves_nothing_running_when_the_service_never_gets_ready(
        tmp_path: Path) -> None:
    started: list[int] = []

    def ready() -> bool:
        started.extend(p.pid for p in psutil.Process().children()
                       if p.pid not in started and "time.sleep(31)" in " ".join(p.cmdline()))
        return False

    with pytest.raises(ServiceError, match="did not become healthy within 1 s"):
        start_and_wait([sys.executable, "-c", "import time; time.sleep(31)"], ready=ready,
                       what="svc", hint="time.sleep", timeout=1, log_path=tmp_path / "l")
    assert started and not any(is_running(pid) for pid in started)


def test_stop_never_signals_a_process_that_is_not_ours() -> None:
    assert not stop(os.getpid(), "no-such-program-hint")
    assert is_running(os.getpid())


def test_status_without_a_stack_says_so(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "infra.stack", "status"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "LLM2LOSS_STACK_DIR": str(tmp_path)},
        timeout=60,
    )
    assert result.returncode == 1 and "no stack recorded" in result.stdout


@pytest.mark.integration
def test_stack_up_status_down(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole local stack comes up on 127.0.0.1, `up` again is a no-op, `down` ends it all."""
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    root = tmp_path / "stack"
    try:
        services = stack.up(root, n_workers=1)
        names = [s.name for s in services]
        assert names == [
            "seaweedfs",
            "dask-scheduler",
            "dask-workers",
            "prefect-server",
            "prefect-worker",
        ]
        for service in services:
            if service.name != "prefect-worker":  # the worker only polls; it opens no port
                _only_loopback(service.pid)
        assert stack.up(root, n_workers=1) == services  # already up: nothing restarted
        assert all(stack.status(root).values())
        env_sh = (root / "env.sh").read_text()
        assert "LLM2LOSS_STORE__URI=s3://llm2loss/store" in env_sh
        assert oct((root / "env.sh").stat().st_mode & 0o777) == "0o600"
        secret = next(line for line in env_sh.splitlines() if "SECRET" in line).split("=", 1)[1]
        assert secret not in (root / "stack.json").read_text()
        from llm2loss.store import ArtifactStore

        monkeypatch.setenv("AWS_ACCESS_KEY_ID", env_sh.split("AWS_ACCESS_KEY_ID=")[1].split()[0])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret.strip("'"))
        store = ArtifactStore("s3://llm2loss/store", endpoint_url=services[0].url)
        store.write_json("hello.json", {"up": True})
        assert store.read_json("hello.json") == {"up": True}
    finally:
        stopped = stack.down(root)
    assert sorted(stopped) == sorted(names)
    assert not any(is_running(s.pid) for s in services)
    assert stack.load_services(root) == []


def test_prefect_harness_runs_flows_against_a_loopback_server(prefect_server) -> None:
    from urllib.parse import urlparse

    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    @flow(name="llm2loss-fixture-check")
    def add(a: int, b: int) -> int:
        return a + b

    assert urlparse(PREFECT_API_URL.value()).hostname == "127.0.0.1"
    assert add(2, 3) == 5
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs()
    assert any(r.state is not None and r.state.is_completed() for r in runs)
