"""PartInfo and the check of bytes against it: size, then sha256, then Parquet rows."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from llm2loss.store.hashing import bytes_sha256, file_sha256
from llm2loss.store.parts import PartInfo, mismatch


def _parquet(rows: int) -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.table({"id": [f"s{i}" for i in range(rows)]}), sink)
    return sink.getvalue()


def test_file_sha256_is_the_sha256_of_the_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "w.bin"
    data = bytes(range(256)) * 20_000  # 5 MB: more than one read chunk
    path.write_bytes(data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest() == bytes_sha256(data)


def test_part_info_of_a_file_records_size_and_sha256(tmp_path: Path) -> None:
    data = _parquet(3)
    path = tmp_path / "part.parquet"
    path.write_bytes(data)
    info = PartInfo.of_file(path, "a/part-00000.parquet", rows=3)
    assert info == PartInfo(key="a/part-00000.parquet", rows=3, sha256=bytes_sha256(data),
                            bytes=len(data))
    assert mismatch(data, info) == ""
    assert PartInfo.of_file(path, "w.safetensors").rows == 0


def test_mismatch_names_the_first_difference() -> None:
    data = _parquet(3)
    info = PartInfo(key="k", rows=3, sha256=bytes_sha256(data), bytes=len(data))
    assert mismatch(data + b"x", info).startswith(f"size {len(data) + 1} != {len(data)}")
    flipped = bytes([data[0] ^ 1]) + data[1:]
    assert mismatch(flipped, info).startswith("sha256 ")
    garbage = b"\x00" * len(data)
    assert mismatch(garbage, info.model_copy(update={"sha256": bytes_sha256(garbage)})) == (
        "not readable Parquet"
    )
    assert mismatch(data, info.model_copy(update={"rows": 4})) == "3 rows != 4"
