"""A Dask scheduler and worker processes on 127.0.0.1 (the `dask` CLIs).

Workers run under a nanny (so a killed worker process is restarted) with one thread each by
default; `gpu=True` advertises `resources={"GPU": 1}` per worker, which GPU shard tasks ask for.
"""

from __future__ import annotations

from pathlib import Path

from infra.processes import HOST, Service, bin_path, free_port, start_and_wait

HINT = "dask"


def _n_workers(address: str) -> int:
    from distributed import Client

    with Client(address, timeout=3) as client:
        return len(client.scheduler_info(n_workers=-1)["workers"])


def start_scheduler(
    log_dir: Path,
    *,
    port: int | None = None,
    dashboard_port: int | None = None,
    timeout: float = 60.0,
) -> Service:
    """Start `dask scheduler` on 127.0.0.1 with its dashboard (`dashboard_port` or a free one)."""
    port = port or free_port()
    log_path = Path(log_dir) / "dask-scheduler.log"
    cmd = [bin_path("dask"), "scheduler", "--host", HOST, "--port", str(port)]
    # The dashboard is bound to 127.0.0.1 explicitly: `--no-dashboard` alone still opens :8787
    # on every interface with this version of distributed.
    cmd += [f"--dashboard-address={HOST}:{dashboard_port or free_port()}"]
    address = f"tcp://{HOST}:{port}"
    pid = start_and_wait(cmd, ready=lambda: _n_workers(address) >= 0, what="the Dask scheduler",
                         hint=HINT, timeout=timeout, log_path=log_path)
    return Service(
        name="dask-scheduler", pid=pid, hint=HINT, url=address, log_path=str(log_path)
    )


def start_workers(
    address: str,
    log_dir: Path,
    *,
    n_workers: int = 2,
    threads_per_worker: int = 1,
    gpu: bool = False,
    timeout: float = 90.0,
) -> Service:
    """Start `n_workers` worker processes (one `dask worker` with nannies) for `address`."""
    if n_workers < 1 or threads_per_worker < 1:
        raise ValueError("n_workers and threads_per_worker must be at least 1")
    log_path = Path(log_dir) / "dask-workers.log"
    cmd = [
        bin_path("dask"),
        "worker",
        address,
        "--host",
        HOST,
        "--nworkers",
        str(n_workers),
        "--nthreads",
        str(threads_per_worker),
        f"--dashboard-address={HOST}:0",
        "--local-directory",
        str(Path(log_dir) / "dask-scratch"),
    ]
    if gpu:
        cmd += ["--resources", "GPU=1"]
    pid = start_and_wait(cmd, ready=lambda: _n_workers(address) >= n_workers,
                         what="the Dask workers", hint=HINT, timeout=timeout, log_path=log_path)
    return Service(
        name="dask-workers",
        pid=pid,
        hint=HINT,
        url=address,
        log_path=str(log_path),
        extra={"n_workers": str(n_workers)},
    )
