"""Fixtures of the security tests: the fault tests' audit harness, the example releases.

The harness lives in tests/faults (audit_harness.py, fault_models.py); it is put on sys.path here
so both folders run the same small audits.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "faults"))

from audit_harness import train_weights  # noqa: E402


@pytest.fixture(scope="session")
def security_releases(cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list:
    """[(release v1, weights), (release v2, weights)] of the example spam filters on the slice."""
    return train_weights(cache_dir, tmp_path_factory.mktemp("security-weights"))


@pytest.fixture
def services(prefect_server, s3_server, dask_cluster):
    """The Prefect server, SeaweedFS and the Dask cluster, started in that order (workers see S3)."""
    return dask_cluster
