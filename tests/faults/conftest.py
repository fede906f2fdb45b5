"""Fixtures of the fault tests: the example releases trained once, a cluster whose workers see S3.

`services` asks for the S3 server before the session's Dask cluster, so that the cluster's worker
processes (spawned once per session) inherit the S3 test credentials whatever test runs first.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from audit_harness import train_weights


@pytest.fixture(scope="session")
def spam_releases(cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list:
    """[(release v1, weights), (release v2, weights)] of the example spam filters on the slice."""
    return train_weights(cache_dir, tmp_path_factory.mktemp("spam-weights"))


@pytest.fixture
def services(prefect_server, s3_server, dask_cluster):
    """The Prefect server, SeaweedFS and the Dask cluster, started in that order."""
    return dask_cluster
