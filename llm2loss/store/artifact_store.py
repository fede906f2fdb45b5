"""The artifact store: a local folder (the default) or `s3://bucket/prefix` through boto3.

Everything an audit produces lives here, addressed by store-relative keys built in
`llm2loss.store.keys`. Tables are Parquet (embeddings as `fixed_size_list<float32>[dim]`),
metadata is JSON; nothing is pickled. Writes are atomic for a reader: a local file appears whole through
`os.replace`, an S3 object appears whole by S3's own semantics.

Sharded stages write each part, then its JSON sidecar (`PartInfo`: rows, size, sha256), and
finally a stage manifest listing the parts. A reader trusts only what a manifest lists and checks
each part against its recorded checksum, so a corrupted or deleted part is detected, never read
as good.

The bytes themselves live in a backend (`_local`, `_s3`): a folder or an S3 prefix.
Credentials for S3 come only from the environment or the AWS credential chain; they never appear
in `uri`, `repr()` or error messages.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import ValidationError

from llm2loss.config import StoreSettings
from llm2loss.errors import ConfigError, DataError, NotFoundError, StoreError
from llm2loss.store._local import TMP_MARK, LocalBackend
from llm2loss.store._s3 import S3Backend
from llm2loss.store.keys import check_key, manifest_key, part_index, part_key, sidecar_key
from llm2loss.store.parts import PartInfo, mismatch
from llm2loss.store.uri import parse_uri

log = logging.getLogger(__name__)


class ArtifactStore:
    """Keys -> bytes, JSON and Parquet tables, in a local folder or an S3 bucket prefix.

    Parameters
    ----------
    uri:
        A local folder path (created on first write) or `s3://bucket/prefix`.
    endpoint_url, region:
        For S3-compatible servers; default to AWS_ENDPOINT_URL / the AWS chain.
    max_attempts, connect_timeout, read_timeout:
        S3 retry and timeout policy: I/O errors are retried with backoff, a dead server fails
        within seconds.
    """

    def __init__(
        self,
        uri: str,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        max_attempts: int = 5,
        connect_timeout: float = 3.0,
        read_timeout: float = 30.0,
    ) -> None:
        kind, where, prefix = parse_uri(uri)
        self._backend: LocalBackend | S3Backend
        if kind == "local":
            self._backend = LocalBackend(where)
            self.uri = where
        else:
            self._backend = S3Backend(
                where,
                prefix,
                endpoint_url=endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None,
                region=region,
                max_attempts=max_attempts,
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
            )
            self.uri = self._backend.uri

    @classmethod
    def from_settings(cls, s: StoreSettings) -> ArtifactStore:
        """The store described by `StoreSettings` (uri, endpoint_url, region)."""
        return cls(s.uri, endpoint_url=s.endpoint_url, region=s.region)

    @property
    def is_local(self) -> bool:
        """True for a local-folder store."""
        return isinstance(self._backend, LocalBackend)

    @property
    def endpoint_url(self) -> str | None:
        """The S3 endpoint in use (None for local stores and the default AWS endpoint)."""
        return getattr(self._backend, "endpoint_url", None)

    def describe(self) -> str:
        """Where the store is, for logs and reports; never contains credentials."""
        if isinstance(self._backend, S3Backend) and self._backend.endpoint_url:
            return f"{self.uri} (endpoint {self._backend.endpoint_url})"
        return self.uri

    def __repr__(self) -> str:
        return f"ArtifactStore({self.describe()!r})"

    # ---- objects

    def exists(self, key: str) -> bool:
        """True when an object exists at `key`."""
        return self._backend.exists(key)

    def list(self, prefix: str) -> list[str]:
        """Keys under `prefix` (a string prefix, e.g. "releases/"), sorted."""
        if prefix:
            check_key(prefix.rstrip("/"))
        return self._backend.list(prefix)

    def read_bytes(self, key: str) -> bytes:
        """The bytes at `key`; NotFoundError when absent."""
        return self._backend.read_bytes(key)

    def write_bytes(self, key: str, data: bytes) -> None:
        """Write `data` at `key`, atomically for a reader."""
        self._backend.write_bytes(key, data)

    def read_json(self, key: str) -> Any:
        """The parsed JSON at `key`; StoreError when it is not valid JSON."""
        data = self.read_bytes(key)
        try:
            return json.loads(data)
        except ValueError as exc:
            raise StoreError(
                f"{key!r} in {self.uri} is not valid JSON ({exc}); delete it and rerun the step "
                "that writes it"
            ) from None

    def write_json(self, key: str, obj: Any) -> None:
        """Write `obj` as indented JSON at `key` (datetimes as ISO strings)."""
        self.write_bytes(key, json.dumps(obj, indent=2, sort_keys=True, default=str).encode())

    def create_json_if_absent(self, key: str, obj: Any) -> bool:
        """Write `obj` as JSON at `key` only if nothing is there; True when this call wrote it.

        Atomic against a concurrent writer (a hard link locally, a conditional put on S3)."""
        return self._backend.create_if_absent(check_key(key), json.dumps(obj, indent=2, sort_keys=True).encode())

    def upload(self, src: Path, key: str) -> None:
        """Copy the local file `src` to `key`."""
        src = Path(src)
        if not src.is_file():
            raise NotFoundError(f"cannot upload {src}: no such file; check the path")
        self._backend.put_file(key, src)

    def download(self, key: str, dest: Path) -> Path:
        """Copy `key` to the local file `dest` (atomically) and return `dest`."""
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f"{dest.name}{TMP_MARK}{uuid.uuid4().hex}")
        try:
            self._backend.get_file(key, tmp)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        return dest

    def upload_dir(self, src: Path, prefix: str) -> list[str]:
        """Copy every file under the local folder `src` to `prefix/<relative path>`."""
        src = Path(src)
        if not src.is_dir():
            raise NotFoundError(f"cannot upload {src}: no such folder; check the path")
        keys = []
        for path in sorted(p for p in src.rglob("*") if p.is_file()):
            key = f"{check_key(prefix)}/{path.relative_to(src).as_posix()}"
            self.upload(path, key)
            keys.append(key)
        return keys

    def download_dir(self, prefix: str, dest: Path) -> Path:
        """Copy every object under `prefix/` into the local folder `dest`; NotFoundError if none."""
        dest = Path(dest)
        keys = self.list(f"{check_key(prefix)}/")
        if not keys:
            raise NotFoundError(f"nothing under {prefix!r} in the store {self.uri}")
        for key in keys:
            rel = key[len(prefix) + 1 :]
            self.download(key, dest.joinpath(*check_key(rel).split("/")))
        return dest

    def delete_prefix(self, prefix: str) -> None:
        """Delete every object whose key starts with `prefix`."""
        self._backend.delete(self.list(prefix))

    # ---- tables

    def write_table(self, key: str, table: pa.Table) -> PartInfo:
        """Write `table` as Parquet at `key`; return its PartInfo (rows, size, sha256)."""
        with tempfile.TemporaryDirectory(prefix="llm2loss-") as tmpdir:
            path = Path(tmpdir) / "part.parquet"
            pq.write_table(table, path)
            info = PartInfo.of_file(path, key, rows=table.num_rows)
            self._backend.put_file(key, path)
        return info

    def read_table(self, key: str, *, expect: PartInfo | None = None) -> pa.Table:
        """Read the Parquet table at `key`; with `expect`, verify size, sha256 and rows first."""
        data = self.read_bytes(key)
        if expect is not None:
            problem = mismatch(data, expect)
            if problem:
                raise StoreError(
                    f"part {key!r} in {self.uri} is corrupt ({problem}); delete it and its "
                    "sidecar and rerun the stage to recompute it"
                )
        try:
            return pq.read_table(pa.BufferReader(data))
        except (pa.ArrowInvalid, OSError) as exc:
            raise StoreError(
                f"part {key!r} in {self.uri} is not readable Parquet ({exc}); delete it and "
                "rerun the stage to recompute it"
            ) from None

    # ---- sharded stages

    def write_part(self, prefix: str, index: int, table: pa.Table) -> PartInfo:
        """Write part `index` of a stage, then its sidecar (the part counts once that exists)."""
        info = self.write_table(part_key(prefix, index), table)
        self.write_json(sidecar_key(prefix, index), info.model_dump())
        return info

    def verify_part(self, info: PartInfo) -> bool:
        """True when the part at `info.key` exists and matches its size, sha256 and rows."""
        try:
            data = self.read_bytes(info.key)
        except NotFoundError:
            return False
        return not mismatch(data, info)

    def done_parts(self, prefix: str, *, verify: bool = False) -> dict[int, PartInfo]:
        """Done parts of a stage: sidecar and part present (and, with `verify`, intact)."""
        keys = set(self.list(f"{check_key(prefix)}/"))
        done: dict[int, PartInfo] = {}
        for key in sorted(keys):
            index = part_index(key)
            if (
                index is None
                or not key.endswith(".json")
                or key.count("/") != prefix.count("/") + 1
            ):
                continue
            info = self._read_sidecar(key)
            if info is None or info.key != part_key(prefix, index) or info.key not in keys:
                continue
            if verify and not self.verify_part(info):
                log.warning("part %s does not match its sidecar; it will be recomputed", info.key)
                continue
            done[index] = info
        return done

    def _read_sidecar(self, key: str) -> PartInfo | None:
        try:
            return PartInfo.model_validate_json(self.read_bytes(key))
        except (ValidationError, NotFoundError):
            log.warning("sidecar %s is unreadable; its part will be recomputed", key)
            return None

    def write_stage_manifest(
        self,
        prefix: str,
        parts: Mapping[int, PartInfo] | Sequence[PartInfo],
        extra: Mapping[str, Any] | None = None,
    ) -> str:
        """Write the stage manifest listing `parts` (last, after every part); return its key."""
        infos = list(parts.values()) if isinstance(parts, Mapping) else list(parts)
        if not infos:
            raise DataError(f"no parts to list in the manifest of {prefix!r}; write parts first")
        infos.sort(key=lambda i: i.key)
        manifest = dict(extra or {})
        manifest.update(
            parts=[i.model_dump() for i in infos],
            rows=sum(i.rows for i in infos),
            written_at=datetime.now(timezone.utc).isoformat(),
        )
        key = manifest_key(prefix)
        self.write_json(key, manifest)
        return key

    def read_stage_manifest(self, prefix: str) -> dict[str, Any] | None:
        """The stage manifest, or None when absent or when a part it lists is missing."""
        key = manifest_key(prefix)
        try:
            manifest = self.read_json(key)
        except NotFoundError:
            return None
        try:
            parts = [PartInfo.model_validate(p) for p in manifest["parts"]]
        except (KeyError, TypeError, ValidationError):
            log.warning("manifest %s is malformed; the stage will be redone", key)
            return None
        present = set(self.list(f"{prefix}/"))
        missing = [p.key for p in parts if p.key not in present]
        if missing:
            log.warning(
                "manifest %s lists missing parts %s; the stage will be redone", key, missing
            )
            return None
        manifest["parts"] = parts
        return manifest

    def iter_stage_parts(self, prefix: str, *, columns: list[str] | None = None
                         ) -> Iterator[tuple[PartInfo, pa.Table]]:
        """(PartInfo, table) of each part a complete stage's manifest lists, verified, in order.

        Every part must have the first part's schema (and hold `columns`): a part written with
        another one is a DataError naming it, not a raw Arrow error later."""
        manifest = self.read_stage_manifest(prefix)
        if manifest is None:
            raise NotFoundError(
                f"no complete stage at {prefix!r} in {self.uri} (manifest absent or a part "
                "missing); run the stage (again) to write it"
            )
        schema: pa.Schema | None = None
        for part in manifest["parts"]:
            table = self.read_table(part.key, expect=part)
            missing = sorted(set(columns or []) - set(table.column_names))
            if missing or (schema is not None and not table.schema.equals(schema)):
                found = ", ".join(f"{f.name}: {f.type}" for f in table.schema)
                raise DataError(
                    f"part {part.key!r} of the stage {prefix} has the columns ({found}), not "
                    f"those of the stage's first part{f' (missing {missing})' if missing else ''}: "
                    "delete it and its sidecar and rerun the audit to recompute it"
                )
            schema = table.schema if schema is None else schema
            yield part, table.select(columns) if columns else table

    def iter_stage_tables(self, prefix: str, *, columns: list[str] | None = None) -> Iterator[pa.Table]:
        """Each part a complete stage's manifest lists, verified, in order: one part in memory
        at a time (for readers that copy the parts into a matrix of their own)."""
        for _part, table in self.iter_stage_parts(prefix, columns=columns):
            yield table

    def read_stage_table(self, prefix: str, *, columns: list[str] | None = None) -> pa.Table:
        """All parts a complete stage's manifest lists, each verified, concatenated in order."""
        return pa.concat_tables(list(self.iter_stage_tables(prefix, columns=columns)))

    def retract_part(self, prefix: str, index: int) -> None:
        """Take part `index` out of its stage: delete its sidecar, then the stage manifest, so
        the next run recomputes that part (for a part that verifies but holds bad data)."""
        self._backend.delete([sidecar_key(prefix, index), manifest_key(prefix)])

    # ---- locks

    def acquire_lock(self, key: str, owner: str, ttl_s: float = 3600.0) -> bool:
        """Take the lock at `key` for `owner` unless someone else holds an unexpired one.

        Returns True when `owner` now holds it; when it already did, its expiry is extended (call
        it again as a heartbeat during long work). Local stores use an
        O_EXCL file; S3 stores a conditional put (If-None-Match: *), taking over an expired lock
        only with If-Match on the expired object's ETag.
        """
        if ttl_s <= 0:
            raise ConfigError(f"lock ttl_s must be positive, got {ttl_s}; e.g. 3600")
        return self._backend.acquire_lock(key, owner, ttl_s)

    def release_lock(self, key: str, owner: str) -> bool:
        """Release the lock at `key` if `owner` holds it; True when released."""
        return self._backend.release_lock(key, owner)
