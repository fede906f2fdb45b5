"""Helpers of the query-service tests: a service run in a thread, the audits' names, JSON comparison."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from llm2loss.config import Settings

MODEL = "spam-filter"
UNAUDITED = "v3"


@dataclass(frozen=True)
class Service:
    """A running service: its base URL and the FastAPI app (whose state holds the audit cache)."""

    url: str
    app: Any


@contextmanager
def running_service(settings: Settings, *, cache_size: int = 4) -> Iterator[Service]:
    """create_app(settings) served by uvicorn in a thread, stopped when the block ends."""
    import torch
    import uvicorn

    from app.serve import DEFAULT_THREADS, bind, create_app

    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    application = create_app(settings, cache_size=cache_size)
    server = uvicorn.Server(uvicorn.Config(application, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the service did not start within 30 s")
        time.sleep(0.02)

    threads = torch.get_num_threads()
    torch.set_num_threads(DEFAULT_THREADS)  # as `serve` runs; given back to the other tests after
    try:
        yield Service(url=f"http://127.0.0.1:{port}", app=application)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
        torch.set_num_threads(threads)


def assert_same_json(ours: Any, theirs: Any, where: str = "answer") -> None:
    """Two JSON answers are the same: equal structure, strings and ints, floats to 1e-5 (the numpy
    and torch paths of a query round float32 differently)."""
    if isinstance(theirs, float) and isinstance(ours, (int, float)) and not isinstance(ours, bool):
        assert ours == pytest.approx(theirs, abs=1e-5, rel=1e-5), where
    elif isinstance(theirs, dict) and isinstance(ours, dict):
        assert ours.keys() == theirs.keys(), where
        for key in theirs:
            assert_same_json(ours[key], theirs[key], f"{where}.{key}")
    elif isinstance(theirs, list) and isinstance(ours, list):
        assert len(ours) == len(theirs), where
        for i, (a, b) in enumerate(zip(ours, theirs)):
            assert_same_json(a, b, f"{where}[{i}]")
    else:
        assert ours == theirs, where

