"""Names become keys only after validation: `../../x` is refused by the flow and the CLI.

The registry and layout already refuse it (tests/store); here the audit flow and the command
line's MODEL@VERSION parsing are shown to refuse it too, and nothing appears outside the store.
"""

from __future__ import annotations

import pytest
from audit_harness import run_flow, small_settings

from app.cli import parse_ref
from llm2loss.config import StoreSettings
from llm2loss.errors import ConfigError

pytestmark = pytest.mark.integration

BAD_VERSIONS = ["../../x", "..", "a/b", ".hidden"]


def _tree(root) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("version", BAD_VERSIONS)
def test_cli_refuses_path_like_versions(version):
    with pytest.raises(ConfigError, match="invalid version"):
        parse_ref(f"spam-filter@{version}")


def test_audit_flow_refuses_path_like_versions_and_writes_nothing(services, tmp_path, cache_dir):
    store_root = tmp_path / "deep" / "store"
    store_root.mkdir(parents=True)
    cfg = small_settings(StoreSettings(uri=str(store_root)), services.scheduler_address, cache_dir)
    before = _tree(tmp_path)
    for version in BAD_VERSIONS:
        _, state = run_flow(cfg, "spam-filter", version, expect_ok=False)
        exc = state.result(raise_on_failure=False)
        assert isinstance(exc, ConfigError) and "invalid version" in str(exc), exc
    assert _tree(tmp_path) == before
