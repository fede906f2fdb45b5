"""The store package's shape: its public names, its light modules, and no old module paths."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import llm2loss
import llm2loss.store
from llm2loss.store import artifact_store, parts, tables

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("pyarrow", "numpy", "pandas", "pydantic", "boto3", "torch")


def test_public_names_come_from_their_modules() -> None:
    from llm2loss.store import ArtifactStore, PartInfo, embeddings_table, table_to_matrix

    assert ArtifactStore is artifact_store.ArtifactStore and PartInfo is parts.PartInfo
    assert embeddings_table is tables.embeddings_table and table_to_matrix is tables.table_to_matrix
    assert set(llm2loss.store.__all__) <= set(dir(llm2loss.store))


def test_an_unknown_name_is_an_import_error() -> None:
    with pytest.raises(ImportError, match="Nope"):
        from llm2loss.store import Nope  # noqa: F401


@pytest.mark.parametrize("module", ["llm2loss.store.keys", "llm2loss.store.hashing", "app.client"])
def test_the_light_modules_import_nothing_heavy(module: str) -> None:
    """keys (names and keys, which config and the server client use) and hashing (which the
    encoders use) must not pull in the rest of the store through the package __init__."""
    code = f"import sys, {module}; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]", done.stdout


@pytest.mark.parametrize("old", ["layout", "names", "store_backends", "store_checks"])
def test_the_old_modules_are_gone(old: str) -> None:
    """Looked up as files: an editable install of another checkout would still find the module."""
    package = Path(llm2loss.__file__).parent
    assert not (package / f"{old}.py").exists(), f"llm2loss/{old}.py is back: it lives in llm2loss/store/"
