"""A Prefect server on 127.0.0.1: SQLite under PREFECT_HOME by default, Postgres by URL.

Telemetry is off (PREFECT_SERVER_ANALYTICS_ENABLED=false). A team's Postgres is given with
`database_url` (it becomes PREFECT_API_DATABASE_CONNECTION_URL, e.g.
`postgresql+asyncpg://user:pass@127.0.0.1:5432/prefect`); it is passed through the environment
of the server process only, never written to the stack's state file.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from infra.processes import HOST, Service, bin_path, free_port, start_and_wait

HINT = "prefect"


def server_env(home: Path, database_url: str | None = None) -> dict[str, str]:
    """The environment a local Prefect server runs with."""
    env = {
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "true",
    }
    if database_url:
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = database_url
    return env


def healthy(api_url: str) -> bool:
    """True when `<api_url>/health` answers true."""
    with urllib.request.urlopen(f"{api_url}/health", timeout=2) as resp:  # noqa: S310 - local URL
        return json.loads(resp.read()) is True


def start_prefect_server(
    home: Path, *, port: int | None = None, database_url: str | None = None, timeout: float = 120.0
) -> Service:
    """Start `prefect server start` on 127.0.0.1 and wait for /api/health."""
    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    log_path = home / "prefect-server.log"
    cmd = [bin_path("prefect"), "server", "start", "--host", HOST, "--port", str(port)]
    api_url = f"http://{HOST}:{port}/api"
    pid = start_and_wait(cmd, ready=lambda: healthy(api_url), what="the Prefect server", hint=HINT,
                         timeout=timeout, log_path=log_path, env=server_env(home, database_url),
                         cwd=home)
    return Service(
        name="prefect-server",
        pid=pid,
        hint=HINT,
        url=api_url,
        log_path=str(log_path),
        extra={"ui": f"http://{HOST}:{port}"},
    )
