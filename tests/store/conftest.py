"""The `store` fixture: every store test runs on a local folder and on a real S3 server."""

from __future__ import annotations

import pytest

from llm2loss.store import ArtifactStore


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest) -> ArtifactStore:
    """Each test runs once on a local folder store and once on an S3 store (SeaweedFS)."""
    return request.getfixturevalue(f"{request.param}_store")
