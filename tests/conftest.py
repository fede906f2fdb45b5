"""Shared fixtures: real services on 127.0.0.1, started once per test session.

- `s3_server` (session): a SeaweedFS S3 server on a free port in a temp dir; sets
  AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_ENDPOINT_URL for the session.
- `s3_store`: a fresh `s3://<bucket>/<unique prefix>` ArtifactStore per test.
- `local_store`: a fresh local-folder ArtifactStore per test.
- `prefect_server` (session): Prefect's own test harness (a real temporary server + database).
- `dask_cluster` (session): a distributed.LocalCluster, 2 worker processes, 1 thread each.
- `cache_dir` (session): ~/.cache/llm2loss, where downloaded corpora are cached between runs.
- `services`: the Prefect server, SeaweedFS and the Dask cluster together (the audit tests' need).
- `chromium` (session): the path of headless Chromium; skips the test when it is missing, or
  fails it when CI=true (CI must never be green without opening a page in a browser).
- `spam_releases` (session): the example spam filters v1 and v2 trained once on the small slice
  of tests/faults/audit_harness.py, shared by the fault and security tests.

Nothing here reaches the network: HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE are set at import.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# The test models are release entrypoints too; set before any Dask worker starts (they inherit it).
os.environ.setdefault("LLM2LOSS_ALLOW_ENTRYPOINTS", "fault_models,inputs_fixture_models,no_such_package,no_such_module_xyz")

TEST_ACCESS_KEY = "llm2loss-test-key"
TEST_SECRET_KEY = "llm2loss-test-secret-0123456789"


@dataclass(frozen=True)
class S3Server:
    """A running SeaweedFS: where to reach it and which bucket exists."""

    endpoint_url: str
    bucket: str
    pid: int
    access_key: str
    secret_key: str


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A SeaweedFS S3 server on 127.0.0.1 for the whole session (stopped by PID at the end)."""
    from infra.seaweedfs import start_seaweedfs, stop_seaweedfs

    service = start_seaweedfs(
        tmp_path_factory.mktemp("seaweedfs"),
        access_key=TEST_ACCESS_KEY,
        secret_key=TEST_SECRET_KEY,
        bucket="llm2loss-test",
    )
    saved = {
        k: os.environ.get(k)
        for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL")
    }
    os.environ.update(
        AWS_ACCESS_KEY_ID=TEST_ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=TEST_SECRET_KEY,
        AWS_ENDPOINT_URL=service.url,
    )
    try:
        yield S3Server(
            endpoint_url=service.url,
            bucket=service.extra["bucket"],
            pid=service.pid,
            access_key=TEST_ACCESS_KEY,
            secret_key=TEST_SECRET_KEY,
        )
    finally:
        stop_seaweedfs(service)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def s3_store(s3_server: S3Server):
    """A fresh ArtifactStore at s3://<bucket>/<unique prefix> on the session's SeaweedFS."""
    from llm2loss.store import ArtifactStore

    return ArtifactStore(
        f"s3://{s3_server.bucket}/t-{uuid.uuid4().hex[:12]}", endpoint_url=s3_server.endpoint_url
    )


@pytest.fixture
def local_store(tmp_path: Path):
    """A fresh ArtifactStore in a temp folder."""
    from llm2loss.store import ArtifactStore

    return ArtifactStore(str(tmp_path / "store"))


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    """A real temporary Prefect server and database for the session (prefect_test_harness)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def dask_cluster(s3_server: S3Server):
    """A Dask LocalCluster on 127.0.0.1: 2 worker processes, 1 thread each, no dashboard.

    Depends on `s3_server` so its AWS_* variables are set before the worker processes spawn:
    workers inherit the environment once, and a cluster started first could never read S3.
    """
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address="127.0.0.1:0",  # loopback only: None still opens 0.0.0.0:8787
    ) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def cache_dir() -> Path:
    """~/.cache/llm2loss (or LLM2LOSS_CACHE_DIR): corpora downloaded once, kept across runs."""
    path = Path(os.environ.get("LLM2LOSS_CACHE_DIR", "~/.cache/llm2loss")).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def services(prefect_server, s3_server: S3Server, dask_cluster):
    """The Prefect server, SeaweedFS and the Dask cluster (whose workers see S3); the cluster."""
    return dask_cluster


@pytest.fixture(scope="session")
def spam_releases(cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list:
    """[(release v1, weights), (release v2, weights)] of the example spam filters on the slice."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent / "faults"))
    from audit_harness import train_weights

    return train_weights(cache_dir, tmp_path_factory.mktemp("spam-weights"))


def in_ci() -> bool:
    """True when the CI variable says so (CI=true or CI=1, as CI services set it)."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def find_chromium() -> str | None:
    """The headless Chromium on PATH (Debian's `chromium` or Ubuntu's `chromium-browser`)."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def chromium() -> str:
    """Headless Chromium for the report and browser tests: skipped without it, failed in CI."""
    path = find_chromium()
    if path is None:
        message = ("headless Chromium is not installed (Debian: apt-get install chromium, or "
                   "`make system-deps`)")
        if in_ci():
            pytest.fail(f"{message}; CI=true, so the browser tests fail instead of skipping")
        pytest.skip(message)
    return path
