"""The whole local stack, up or down: `python -m infra.stack up|down|status`.

`up` starts, on 127.0.0.1, SeaweedFS (S3 store), a Prefect server, a Dask scheduler with workers
and a Prefect worker for the `llm2loss` pool, each waited on until healthy. PIDs go to
`<state dir>/stack.json`; `down` ends only those PIDs. `up` also writes `<state dir>/env.sh`
(mode 0600) with the variables that point llm2loss at the stack: `source` it in a shell.

The state dir is LLM2LOSS_STACK_DIR or ~/.cache/llm2loss/stack. S3 credentials are taken from
AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY when set, else generated once into env.sh. A Postgres
database for Prefect is given with PREFECT_API_DATABASE_CONNECTION_URL.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shlex
import sys
from pathlib import Path

from infra import dask_cluster, prefect_server, seaweedfs, worker
from infra.processes import Service, ServiceError, is_running, stop

BUCKET = "llm2loss"


def state_dir() -> Path:
    """Where the stack keeps its PIDs, logs, data and env.sh."""
    return (
        Path(os.environ.get("LLM2LOSS_STACK_DIR", "~/.cache/llm2loss/stack")).expanduser().resolve()
    )


def _state_file(root: Path) -> Path:
    return root / "stack.json"


def load_services(root: Path) -> list[Service]:
    """The services recorded by the last `up` (empty when none)."""
    path = _state_file(root)
    if not path.exists():
        return []
    return [Service(**s) for s in json.loads(path.read_text())["services"]]


def _save(root: Path, services: list[Service]) -> None:
    tmp = _state_file(root).with_suffix(".tmp")
    tmp.write_text(json.dumps({"services": [s.to_dict() for s in services]}, indent=2))
    os.replace(tmp, _state_file(root))


def _credentials(root: Path) -> tuple[str, str]:
    key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    if key and secret:
        return key, secret
    saved = root / "credentials.json"
    if saved.exists():
        data = json.loads(saved.read_text())
        return data["key"], data["secret"]
    key, secret = f"llm2loss-{secrets.token_hex(4)}", secrets.token_urlsafe(24)
    saved.touch(mode=0o600)
    saved.write_text(json.dumps({"key": key, "secret": secret}))
    return key, secret


def _write_env(root: Path, env: dict[str, str]) -> Path:
    path = root / "env.sh"
    path.touch(mode=0o600)
    path.write_text("".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items()))
    return path


def up(root: Path, *, n_workers: int = 2, with_prefect: bool = True) -> list[Service]:
    """Start every service not already running; return all of them. Idempotent."""
    root.mkdir(parents=True, exist_ok=True)
    services = [s for s in load_services(root) if is_running(s.pid, s.hint)]
    have = {s.name for s in services}
    key, secret = _credentials(root)

    def add(service: Service) -> Service:
        services.append(service)
        _save(root, services)
        print(f"  {service.name:15s} pid {service.pid:<7d} {service.url}")
        return service

    def find(name: str) -> Service:
        return next(s for s in services if s.name == name)

    if "seaweedfs" not in have:
        add(
            seaweedfs.start_seaweedfs(
                root / "seaweedfs", access_key=key, secret_key=secret, bucket=BUCKET
            )
        )
    if "dask-scheduler" not in have:
        add(dask_cluster.start_scheduler(root / "logs"))
    if "dask-workers" not in have:
        add(
            dask_cluster.start_workers(
                find("dask-scheduler").url, root / "logs", n_workers=n_workers
            )
        )
    env = {
        "AWS_ACCESS_KEY_ID": key,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_ENDPOINT_URL": find("seaweedfs").url,
        "LLM2LOSS_STORE__URI": f"s3://{BUCKET}/store",
        "LLM2LOSS_STORE__ENDPOINT_URL": find("seaweedfs").url,
        "LLM2LOSS_DASK__ADDRESS": find("dask-scheduler").url,
    }
    if with_prefect:
        if "prefect-server" not in have:
            add(
                prefect_server.start_prefect_server(
                    root / "prefect",
                    database_url=os.environ.get("PREFECT_API_DATABASE_CONNECTION_URL"),
                )
            )
        env["PREFECT_API_URL"] = find("prefect-server").url
        if "prefect-worker" not in have:
            add(worker.start_worker(env["PREFECT_API_URL"], root / "logs", env=env))
    print(f"stack is up; run: source {_write_env(root, env)}")
    return services


def down(root: Path) -> list[str]:
    """Stop the recorded services (newest first), by PID only; return the names stopped."""
    stopped = []
    for service in reversed(load_services(root)):
        if stop(service.pid, service.hint):
            stopped.append(service.name)
            print(f"  stopped {service.name} (pid {service.pid})")
    if _state_file(root).exists():
        _state_file(root).unlink()
    return stopped


def status(root: Path) -> dict[str, bool]:
    """Each recorded service -> whether it still runs."""
    result = {}
    for service in load_services(root):
        result[service.name] = is_running(service.pid, service.hint)
        word = "running" if result[service.name] else "NOT running"
        print(f"  {service.name:15s} pid {service.pid:<7d} {word:12s} {service.url}")
    if not result:
        print("no stack recorded in", root)
    return result


def main(argv: list[str] | None = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(
        prog="python -m infra.stack", description=__doc__.split("\n")[0]
    )
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument("--workers", type=int, default=2, help="Dask worker processes (up)")
    parser.add_argument(
        "--no-prefect", action="store_true", help="start only SeaweedFS and Dask (up)"
    )
    args = parser.parse_args(argv)
    root = state_dir()
    try:
        if args.command == "up":
            up(root, n_workers=args.workers, with_prefect=not args.no_prefect)
        elif args.command == "down":
            down(root)
        else:
            states = status(root)
            return 0 if states and all(states.values()) else 1
    except ServiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
