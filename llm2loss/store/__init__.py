"""The artifact store: where everything an audit produces lives, and how it is addressed.

`from llm2loss.store import ArtifactStore` is the way in; `artifact_store` holds it.

The names below are loaded on first use, so a light module of this package stays light:
importing it does not pull in pyarrow, numpy or pydantic.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llm2loss.store.artifact_store import ArtifactStore, PartInfo, embeddings_table, table_to_matrix

__all__ = ["ArtifactStore", "PartInfo", "embeddings_table", "table_to_matrix"]

_HOME = {
    "ArtifactStore": "llm2loss.store.artifact_store",
    "PartInfo": "llm2loss.store.artifact_store",
    "embeddings_table": "llm2loss.store.artifact_store",
    "table_to_matrix": "llm2loss.store.artifact_store",
}


def __getattr__(name: str) -> Any:
    """The public name `name`, imported from its module on first use."""
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'llm2loss.store' has no attribute {name!r}")
    value = getattr(import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
