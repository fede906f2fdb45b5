"""The house rules on imports: the library never imports the orchestration or the app.

`llm2loss/` is pure Python + numpy + torch: it must run without Prefect or Dask, so no module
under it may import prefect, dask, distributed, prefect_dask, flows, tasks or app (the command
line and the query service in `app/` may import flows; flows and tasks wrap the library).
Checked on the source text with `ast`, so a lazy import inside a function counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {"prefect", "prefect_dask", "dask", "distributed", "flows", "tasks", "app"}


def imported_roots(path: Path) -> set[str]:
    """Top-level package names a Python file imports (absolute imports only)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("path", sorted((ROOT / "llm2loss").rglob("*.py")),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_the_library_imports_no_orchestration(path: Path) -> None:
    bad = imported_roots(path) & FORBIDDEN
    assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}: move that code to app/ or flows/"


def test_the_check_sees_a_lazy_import(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from prefect import flow\n    import dask.array\n")
    assert imported_roots(probe) == {"prefect", "dask"}
