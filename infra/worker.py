"""A Prefect process worker polling the `llm2loss` work pool (the pool prefect.yaml deploys to).

The worker creates the pool if it does not exist. It runs flow runs as subprocesses with the
environment it was started with, so the store settings and S3 credentials given here reach them.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from infra.processes import Service, bin_path, start_and_wait

HINT = "prefect"
POOL = "llm2loss"


def pool_workers(api_url: str, pool: str = POOL) -> list[str]:
    """Names of the workers the server has seen polling `pool`."""
    req = urllib.request.Request(
        f"{api_url}/work_pools/{pool}/workers/filter",
        data=b"{}",
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=3) as resp:  # noqa: S310 - local URL
        return [w["name"] for w in json.loads(resp.read())]


def start_worker(
    api_url: str,
    log_dir: Path,
    *,
    pool: str = POOL,
    name: str = "llm2loss-local",
    env: Mapping[str, str] | None = None,
    timeout: float = 90.0,
) -> Service:
    """Start `prefect worker start --pool <pool> --type process` and wait until it polls."""
    log_path = Path(log_dir) / "prefect-worker.log"
    cmd = [
        bin_path("prefect"),
        "worker",
        "start",
        "--pool",
        pool,
        "--type",
        "process",
        "--name",
        name,
        "--install-policy",
        "never",
    ]
    full_env = {
        "PREFECT_API_URL": api_url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        **(env or {}),
    }
    pid = start_and_wait(cmd, ready=lambda: name in pool_workers(api_url, pool),
                         what="the Prefect worker", hint=HINT, timeout=timeout,
                         log_path=log_path, env=full_env, interval=1.0)
    return Service(
        name="prefect-worker",
        pid=pid,
        hint=HINT,
        url=api_url,
        log_path=str(log_path),
        extra={"pool": pool},
    )
