"""The artifact store: where everything an audit produces lives, and how it is addressed.

`from llm2loss.store import ArtifactStore` is the way in. The package's rooms:

- `artifact_store`: `ArtifactStore` (keys -> bytes, JSON, Parquet tables, sharded stages, locks);
- `keys`: the only place store keys are built, and the names that go into them are validated;
- `parts`: `PartInfo`, what a reader checks a written table against (rows, size, sha256);
- `tables`: embeddings as Arrow tables (`embeddings_table`, `table_to_matrix`);
- `uri`: what a store URI means (a local folder or `s3://bucket/prefix`);
- `checks`: validation of what is read back from the store, which is untrusted;
- `hashing`: sha256 of files;
- `_local`, `_s3`: the backends that hold the bytes.

The names below are loaded on first use, so `llm2loss.store.keys` (which `llm2loss.config` and
the server client import) stays standard-library only: importing it does not pull in pyarrow,
numpy or pydantic.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llm2loss.store.artifact_store import ArtifactStore
    from llm2loss.store.parts import PartInfo
    from llm2loss.store.tables import embeddings_table, table_to_matrix

__all__ = ["ArtifactStore", "PartInfo", "embeddings_table", "table_to_matrix"]

_HOME = {
    "ArtifactStore": "llm2loss.store.artifact_store",
    "PartInfo": "llm2loss.store.parts",
    "embeddings_table": "llm2loss.store.tables",
    "table_to_matrix": "llm2loss.store.tables",
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
    """The module's names, the lazily loaded public ones included."""
    return sorted({*globals(), *__all__})
