"""Process plumbing shared by the infra services: free ports, start, wait-until-healthy, stop.

A service is a child process we started; we remember its PID and a word of its command line
(`hint`) so that a stop never ends an unrelated process that happens to reuse the PID.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

HOST = "127.0.0.1"


class ServiceError(RuntimeError):
    """A service could not be started, did not become healthy, or could not be stopped."""


@dataclass
class Service:
    """One started service: its PID, a word of its command line, where it listens, its log."""

    name: str
    pid: int
    hint: str
    url: str
    log_path: str
    extra: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        """JSON-able form, for the stack's state file (never holds credentials)."""
        return asdict(self)


def port_is_free(port: int, host: str = HOST) -> bool:
    """True when `host:port` can be bound right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(*, offsets: Sequence[int] = (0,), avoid: set[int] | None = None) -> int:
    """A port p on 127.0.0.1 such that p + o is free for every o in `offsets`.

    SeaweedFS opens each gRPC port at its HTTP port + 10000, hence `offsets`.
    """
    avoid = avoid or set()
    span = max(offsets)
    for _ in range(200):
        port = random.randint(20000, 65000 - span)
        ports = {port + o for o in offsets}
        if not ports & avoid and all(port_is_free(p) for p in ports):
            return port
    raise ServiceError("no free port found on 127.0.0.1; stop some services and retry")


def bin_path(program: str) -> str:
    """The path of `program` installed beside this Python (the venv's bin), else on PATH."""
    beside = Path(sys.executable).parent / program
    if beside.exists():
        return str(beside)
    import shutil

    found = shutil.which(program)
    if not found:
        raise ServiceError(
            f"cannot find the program {program!r}: install the project with "
            "`pip install -e '.[dev]'` (make venv)"
        )
    return found


def spawn(
    cmd: Sequence[str],
    *,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start `cmd` in its own session (safe from the caller's Ctrl-C), logging to a file."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            list(cmd),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
        )


def log_tail(log_path: Path | str, lines: int = 15) -> str:
    """The last lines of a log file, for error messages."""
    try:
        text = Path(log_path).read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def wait_until(
    check: Callable[[], bool],
    *,
    what: str,
    timeout: float,
    pid: int,
    log_path: Path | str,
    interval: float = 0.3,
) -> None:
    """Poll `check` until it returns True; ServiceError if `pid` dies or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - not up yet; any error means "try again"
            pass
        if not is_running(pid):
            raise ServiceError(
                f"{what} exited during start-up; its log ({log_path}) ends with:\n"
                f"{log_tail(log_path)}"
            )
        if time.monotonic() > deadline:
            raise ServiceError(
                f"{what} did not become healthy within {timeout:.0f} s; see its log {log_path}, "
                "or raise the timeout on a slow machine"
            )
        time.sleep(interval)


def start_and_wait(
    cmd: Sequence[str],
    *,
    ready: Callable[[], bool],
    what: str,
    hint: str,
    timeout: float,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    interval: float = 0.3,
) -> int:
    """Start `cmd` (see `spawn`) and wait until `ready()`; return its PID.

    If it dies or is not ready within `timeout`, the process is stopped (and reaped) before the
    ServiceError is raised, so a failed start leaves nothing running.
    """
    proc = spawn(cmd, log_path=log_path, env=env, cwd=cwd)
    try:
        wait_until(ready, what=what, timeout=timeout, pid=proc.pid, log_path=log_path,
                   interval=interval)
    except BaseException:
        stop(proc.pid, hint)
        proc.wait()
        raise
    return proc.pid


def is_running(pid: int, hint: str | None = None) -> bool:
    """True when `pid` runs (and, with `hint`, its command line mentions `hint`)."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return hint is None or any(hint in part for part in proc.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def stop(pid: int, hint: str, *, timeout: float = 15.0) -> bool:
    """End the process `pid` we started (SIGTERM, then SIGKILL after `timeout`).

    Returns False when it was not running or no longer runs our program (`hint` not in its
    command line): then nothing is signalled. Descendants still alive after the parent ends
    (workers the process spawned) are ended too.
    """
    if not is_running(pid, hint):
        return False
    proc = psutil.Process(pid)
    children = proc.children(recursive=True)
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except psutil.TimeoutExpired:
        proc.kill()
        proc.wait(5)
    _, alive = psutil.wait_procs(children, timeout=5)
    for child in alive:
        child.kill()
    return True


def listening_addresses(pid: int) -> set[tuple[str, int]]:
    """(ip, port) pairs the process `pid` and its descendants listen on (TCP)."""
    proc = psutil.Process(pid)
    found = set()
    for p in [proc, *proc.children(recursive=True)]:
        try:
            conns = p.net_connections(kind="inet")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        for c in conns:
            if c.status == psutil.CONN_LISTEN:
                found.add((c.laddr.ip, c.laddr.port))
    return found
