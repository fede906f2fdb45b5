"""What a reader checks a written table against: `PartInfo` (key, rows, sha256, size).

Each part of a sharded stage is followed by a JSON sidecar holding its PartInfo, and a stage
manifest lists the PartInfo of every part; a release's weights get one too. A reader trusts
bytes only when `mismatch` finds nothing, so a corrupted, truncated or swapped part is detected,
never read as good.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel

from llm2loss.store.hashing import bytes_sha256, file_sha256


class PartInfo(BaseModel):
    """What a reader needs to trust one written table: its key, rows, sha256 and size."""

    key: str
    rows: int
    sha256: str
    bytes: int

    @classmethod
    def of_file(cls, path: Path, key: str, rows: int = 0) -> PartInfo:
        """The PartInfo of the local file `path`, to be stored at `key` (`rows`: 0 if no table)."""
        return cls(key=key, rows=rows, sha256=file_sha256(path), bytes=Path(path).stat().st_size)


def mismatch(data: bytes, expect: PartInfo) -> str:
    """Why `data` does not match `expect` (size, sha256, then Parquet rows), or "" when it does."""
    if len(data) != expect.bytes:
        return f"size {len(data)} != {expect.bytes} bytes"
    digest = bytes_sha256(data)
    if digest != expect.sha256:
        return f"sha256 {digest[:12]}... != {expect.sha256[:12]}..."
    try:
        rows = pq.ParquetFile(pa.BufferReader(data)).metadata.num_rows
    except (pa.ArrowInvalid, OSError):
        return "not readable Parquet"
    if rows != expect.rows:
        return f"{rows} rows != {expect.rows}"
    return ""
