"""The artifact store: a local folder (the default) or `s3://bucket/prefix` through boto3.

Everything an audit produces lives here, addressed by store-relative keys built in
`llm2loss.layout`. Tables are Parquet (embeddings as `fixed_size_list<float32>[dim]`), metadata is
JSON; nothing is pickled. Writes are atomic for a reader: a local file appears whole through
`os.replace`, an S3 object appears whole by S3's own semantics.

Sharded stages write each part, then its JSON sidecar (`PartInfo`: rows, size, sha256), and
finally a stage manifest listing the parts. A reader trusts only what a manifest lists and checks
each part against its recorded checksum, so a corrupted or deleted part is detected, never read
as good.

Credentials for S3 come only from the environment or the AWS credential chain; they never appear
in `uri`, `repr()` or error messages.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ValidationError

from llm2loss.config import StoreSettings
from llm2loss.errors import ConfigError, DataError, NotFoundError, StoreError
from llm2loss.layout import check_key, manifest_key, part_index, part_key, sidecar_key

log = logging.getLogger(__name__)

_TMP_MARK = ".llm2loss-tmp-"
_CHUNK = 1 << 20


class PartInfo(BaseModel):
    """What a reader needs to trust one written table: its key, rows, sha256 and size."""

    key: str
    rows: int
    sha256: str
    bytes: int


# --------------------------------------------------------------------------- embeddings tables


def embeddings_table(ids: Sequence[str], matrix: np.ndarray) -> pa.Table:
    """A table `id: string, embedding: fixed_size_list<float32>[dim]` over `matrix`.

    A C-contiguous float32 matrix is wrapped without copying; anything else is converted once.
    Raises DataError for a non-2-D matrix, a row count that differs from `ids`, or NaN/inf.
    """
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[1] < 1:
        raise DataError(
            f"embeddings must be a 2-D array (n, dim), got shape {matrix.shape}; "
            "reshape it to one row per sample"
        )
    if matrix.shape[0] != len(ids):
        raise DataError(f"{len(ids)} ids but {matrix.shape[0]} embedding rows; pass one row per id")
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    if not np.isfinite(matrix).all():
        raise DataError("embeddings contain NaN or inf; check the encoder's input and output")
    values = pa.array(matrix.reshape(-1), type=pa.float32())
    column = pa.FixedSizeListArray.from_arrays(values, matrix.shape[1])
    return pa.table({"id": pa.array(list(ids), type=pa.string()), "embedding": column})


def table_to_matrix(table: pa.Table) -> tuple[list[str], np.ndarray]:
    """The ids and the float32 (n, dim) matrix of an embeddings table.

    One chunk is viewed without copying; several chunks are joined with one copy.
    """
    if "id" not in table.column_names or "embedding" not in table.column_names:
        raise DataError(
            f"an embeddings table needs columns 'id' and 'embedding', got {table.column_names}; "
            "build it with llm2loss.store.embeddings_table"
        )
    column = table.column("embedding")
    if not pa.types.is_fixed_size_list(column.type):
        raise DataError(
            f"column 'embedding' has type {column.type}, expected fixed_size_list<float32>; "
            "build it with llm2loss.store.embeddings_table"
        )
    if column.null_count:
        raise DataError(f"{column.null_count} embeddings are null; recompute those shards")
    dim = column.type.list_size
    chunks = [chunk.flatten().to_numpy(zero_copy_only=False) for chunk in column.chunks]
    if not chunks:
        flat = np.empty(0, dtype=np.float32)
    elif len(chunks) == 1:
        flat = chunks[0]
    else:
        flat = np.concatenate(chunks)
    ids = table.column("id").to_pylist()
    return ids, flat.astype(np.float32, copy=False).reshape(-1, dim)


# --------------------------------------------------------------------------- helpers


def _sha256_file(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _parquet_bytes_rows(data: bytes) -> int:
    return pq.ParquetFile(pa.BufferReader(data)).metadata.num_rows


def _parse_uri(uri: str) -> tuple[str, str, str]:
    """(kind, bucket-or-root, prefix) of a store URI; ConfigError for anything else."""
    if not isinstance(uri, str) or not uri.strip():
        raise ConfigError(
            f"invalid store URI {uri!r}: use a local folder path (e.g. ./llm2loss-store) or "
            "s3://bucket/prefix"
        )
    if uri.startswith("s3://"):
        bucket, _, prefix = uri[len("s3://") :].partition("/")
        prefix = prefix.strip("/")
        if not bucket or "@" in bucket or ":" in bucket:
            raise ConfigError(
                f"invalid store URI {uri!r}: an S3 URI is s3://bucket/prefix (credentials come "
                "from the environment, never from the URI)"
            )
        if prefix:
            check_key(prefix)
        return "s3", bucket, prefix
    if "://" in uri:
        scheme = uri.split("://", 1)[0]
        raise ConfigError(
            f"unsupported store URI scheme {scheme!r} in {uri!r}: use a local folder path "
            "(e.g. ./llm2loss-store) or s3://bucket/prefix"
        )
    return "local", str(Path(uri).expanduser().resolve()), ""


# --------------------------------------------------------------------------- backends


class _LocalBackend:
    """Objects as files under a root folder; every write goes through a temp file + os.replace."""

    def __init__(self, root: str) -> None:
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def list(self, prefix: str) -> list[str]:
        base = self.root
        parts = prefix.split("/")
        if len(parts) > 1:
            base = self.root.joinpath(*[p for p in parts[:-1] if p])
        if not base.is_dir():
            return []
        keys = []
        for dirpath, _, files in os.walk(base):
            rel = Path(dirpath).relative_to(self.root).as_posix()
            for name in files:
                if _TMP_MARK in name:
                    continue
                key = name if rel == "." else f"{rel}/{name}"
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def read_bytes(self, key: str) -> bytes:
        try:
            return self.path(key).read_bytes()
        except FileNotFoundError:
            raise NotFoundError(f"no artifact {key!r} in the store {self.root}") from None

    def put_file(self, key: str, src: Path) -> None:
        dest = self.path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f"{dest.name}{_TMP_MARK}{uuid.uuid4().hex}")
        try:
            shutil.copyfile(src, tmp)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)

    def write_bytes(self, key: str, data: bytes) -> None:
        dest = self.path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f"{dest.name}{_TMP_MARK}", dir=dest.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, dest)
        finally:
            Path(tmp).unlink(missing_ok=True)

    def get_file(self, key: str, dest: Path) -> None:
        src = self.path(key)
        if not src.is_file():
            raise NotFoundError(f"no artifact {key!r} in the store {self.root}")
        shutil.copyfile(src, dest)

    def delete(self, keys: list[str]) -> None:
        for key in keys:
            self.path(key).unlink(missing_ok=True)

    def acquire_lock(self, key: str, owner: str, ttl_s: float) -> bool:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        body = json.dumps({"owner": owner, "expires_at": time.time() + ttl_s}).encode()
        for _ in range(2):
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if not self._break_if_stale(path, owner):
                    return self._owner_of(path) == owner
                continue
            with os.fdopen(fd, "wb") as f:
                f.write(body)
            return True
        return False

    @staticmethod
    def _owner_of(path: Path) -> str | None:
        try:
            return json.loads(path.read_bytes()).get("owner")
        except (OSError, ValueError):
            return None

    @staticmethod
    def _break_if_stale(path: Path, owner: str) -> bool:
        """Remove an expired lock; True when one was removed. Atomic: only one rename wins."""
        try:
            held = json.loads(path.read_bytes())
        except FileNotFoundError:
            return True
        except ValueError:
            held = {"expires_at": 0}
        if held.get("owner") == owner or held.get("expires_at", 0) > time.time():
            return False
        tomb = path.with_name(f"{path.name}{_TMP_MARK}{uuid.uuid4().hex}")
        try:
            os.rename(path, tomb)
        except FileNotFoundError:
            return True
        stolen = json.loads(tomb.read_bytes() or b"{}")
        if stolen.get("expires_at", 0) > time.time():
            # Between our read and our rename someone else took a fresh lock: give it back.
            with contextlib.suppress(FileExistsError):
                os.link(tomb, path)
            tomb.unlink(missing_ok=True)
            return False
        tomb.unlink(missing_ok=True)
        return True

    def release_lock(self, key: str, owner: str) -> bool:
        path = self.path(key)
        if self._owner_of(path) != owner:
            return False
        path.unlink(missing_ok=True)
        return True


class _S3Backend:
    """Objects in `s3://bucket/prefix` via boto3, with retries and short timeouts."""

    def __init__(
        self,
        bucket: str,
        prefix: str,
        *,
        endpoint_url: str | None,
        region: str | None,
        max_attempts: int,
        connect_timeout: float,
        read_timeout: float,
    ) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix
        self.endpoint_url = endpoint_url
        self.uri = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        config = Config(
            retries={"mode": "standard", "max_attempts": max_attempts},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            s3={"addressing_style": "path"},
        )
        self.client = boto3.session.Session().client(
            "s3", endpoint_url=endpoint_url, region_name=region or "us-east-1", config=config
        )

    def _key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _rel(self, full: str) -> str:
        return full[len(self.prefix) + 1 :] if self.prefix else full

    @contextlib.contextmanager
    def _errors(self, action: str, key: str = "") -> Iterator[None]:
        """Translate boto errors into one clear sentence, never including credentials."""
        from botocore import exceptions as bx

        where = f"{self.uri}/{key}" if key else self.uri
        endpoint = self.endpoint_url or "the default AWS endpoint"
        try:
            yield
        except bx.NoCredentialsError:
            raise StoreError(
                f"no S3 credentials found to {action} {where}: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY (or an AWS profile) in the environment"
            ) from None
        except (
            bx.EndpointConnectionError,
            bx.ConnectTimeoutError,
            bx.ReadTimeoutError,
            bx.ConnectionClosedError,
        ) as exc:
            raise StoreError(
                f"cannot reach the S3 endpoint {endpoint} to {action} {where} "
                f"({type(exc).__name__}): check that the server runs and the endpoint_url / "
                "AWS_ENDPOINT_URL is right"
            ) from None
        except bx.ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", "unknown"))
            if code in ("NoSuchKey", "404", "NotFound"):
                raise NotFoundError(f"no artifact {key!r} in the store {self.uri}") from None
            if code in (
                "InvalidAccessKeyId",
                "SignatureDoesNotMatch",
                "AccessDenied",
                "403",
                "InvalidToken",
                "ExpiredToken",
                "Forbidden",
            ):
                raise StoreError(
                    f"S3 refused the credentials ({code}) to {action} {where}: check "
                    "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or the AWS profile) and the "
                    "bucket's permissions"
                ) from None
            if code == "NoSuchBucket":
                raise StoreError(
                    f"the bucket {self.bucket!r} does not exist at {endpoint}: create it or fix "
                    "the store URI"
                ) from None
            raise StoreError(f"S3 error {code} to {action} {where}; retry later") from None

    def exists(self, key: str) -> bool:
        try:
            with self._errors("check", key):
                self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except NotFoundError:
            return False
        return True

    def list(self, prefix: str) -> list[str]:
        full = (f"{self.prefix}/" if self.prefix else "") + prefix
        keys: list[str] = []
        with self._errors("list", prefix):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=full
            )
            for page in pages:
                keys.extend(self._rel(o["Key"]) for o in page.get("Contents", []))
        return sorted(keys)

    def read_bytes(self, key: str) -> bytes:
        with self._errors("read", key):
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()

    def write_bytes(self, key: str, data: bytes) -> None:
        with self._errors("write", key):
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def put_file(self, key: str, src: Path) -> None:
        with self._errors("upload", key):
            self.client.upload_file(str(src), self.bucket, self._key(key))

    def get_file(self, key: str, dest: Path) -> None:
        with self._errors("download", key):
            self.client.download_file(self.bucket, self._key(key), str(dest))

    def delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):
            batch = [{"Key": self._key(k)} for k in keys[start : start + 1000]]
            with self._errors("delete", keys[start]):
                self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
                )

    def _conditional(self, action: str, key: str, **kwargs: Any) -> bool:
        """Run a conditional request; False when its precondition failed."""
        from botocore import exceptions as bx

        try:
            with self._errors(action, key):
                try:
                    getattr(self.client, action)(Bucket=self.bucket, Key=self._key(key), **kwargs)
                except bx.ClientError as exc:
                    code = exc.response.get("Error", {}).get("Code")
                    if code in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                        return False
                    if code in ("NotImplemented", "501"):
                        raise StoreError(
                            f"the S3 server at {self.endpoint_url or 'AWS'} does not support "
                            "conditional writes, which audit locks need: use a server that "
                            "supports If-None-Match/If-Match (AWS S3, SeaweedFS, MinIO)"
                        ) from None
                    raise
        except NotFoundError:
            return False
        return True

    def acquire_lock(self, key: str, owner: str, ttl_s: float) -> bool:
        body = json.dumps({"owner": owner, "expires_at": time.time() + ttl_s}).encode()
        if self._conditional("put_object", key, Body=body, IfNoneMatch="*"):
            return True
        try:
            with self._errors("read lock", key):
                got = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
                held, etag = json.loads(got["Body"].read() or b"{}"), got["ETag"]
        except NotFoundError:  # released between our put and our read: try once more
            return self._conditional("put_object", key, Body=body, IfNoneMatch="*")
        if held.get("owner") == owner:
            return True
        if held.get("expires_at", 0) > time.time():
            return False
        # Expired: take it over only if nobody changed it since we read it.
        return self._conditional("put_object", key, Body=body, IfMatch=etag)

    def release_lock(self, key: str, owner: str) -> bool:
        try:
            with self._errors("read lock", key):
                got = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
                held, etag = json.loads(got["Body"].read() or b"{}"), got["ETag"]
        except NotFoundError:
            return False
        if held.get("owner") != owner:
            return False
        return self._conditional("delete_object", key, IfMatch=etag)


# --------------------------------------------------------------------------- the store


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
        kind, where, prefix = _parse_uri(uri)
        self._backend: _LocalBackend | _S3Backend
        if kind == "local":
            self._backend = _LocalBackend(where)
            self.uri = where
        else:
            self._backend = _S3Backend(
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
        return isinstance(self._backend, _LocalBackend)

    @property
    def endpoint_url(self) -> str | None:
        """The S3 endpoint in use (None for local stores and the default AWS endpoint)."""
        return getattr(self._backend, "endpoint_url", None)

    def describe(self) -> str:
        """Where the store is, for logs and reports; never contains credentials."""
        if isinstance(self._backend, _S3Backend) and self._backend.endpoint_url:
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
        tmp = dest.with_name(f"{dest.name}{_TMP_MARK}{uuid.uuid4().hex}")
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
            info = PartInfo(
                key=key, rows=table.num_rows, sha256=_sha256_file(path), bytes=path.stat().st_size
            )
            self._backend.put_file(key, path)
        return info

    def read_table(self, key: str, *, expect: PartInfo | None = None) -> pa.Table:
        """Read the Parquet table at `key`; with `expect`, verify size, sha256 and rows first."""
        data = self.read_bytes(key)
        if expect is not None:
            problem = _mismatch(data, expect)
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
        return not _mismatch(data, info)

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

    def read_stage_table(self, prefix: str, *, columns: list[str] | None = None) -> pa.Table:
        """All parts a complete stage's manifest lists, each verified, concatenated in order."""
        manifest = self.read_stage_manifest(prefix)
        if manifest is None:
            raise NotFoundError(
                f"no complete stage at {prefix!r} in {self.uri} (manifest absent or a part "
                "missing); run the stage (again) to write it"
            )
        tables = [self.read_table(p.key, expect=p) for p in manifest["parts"]]
        table = pa.concat_tables(tables)
        return table.select(columns) if columns else table

    # ---- locks

    def acquire_lock(self, key: str, owner: str, ttl_s: float = 3600.0) -> bool:
        """Take the lock at `key` for `owner` unless someone else holds an unexpired one.

        Returns True when `owner` now holds it (also when it already did). Local stores use an
        O_EXCL file; S3 stores a conditional put (If-None-Match: *), taking over an expired lock
        only with If-Match on the expired object's ETag.
        """
        if ttl_s <= 0:
            raise ConfigError(f"lock ttl_s must be positive, got {ttl_s}; e.g. 3600")
        return self._backend.acquire_lock(key, owner, ttl_s)

    def release_lock(self, key: str, owner: str) -> bool:
        """Release the lock at `key` if `owner` holds it; True when released."""
        return self._backend.release_lock(key, owner)


def _mismatch(data: bytes, expect: PartInfo) -> str:
    """Why `data` does not match `expect`, or "" when it does."""
    if len(data) != expect.bytes:
        return f"size {len(data)} != {expect.bytes} bytes"
    digest = hashlib.sha256(data).hexdigest()
    if digest != expect.sha256:
        return f"sha256 {digest[:12]}... != {expect.sha256[:12]}..."
    try:
        rows = _parquet_bytes_rows(data)
    except (pa.ArrowInvalid, OSError):
        return "not readable Parquet"
    if rows != expect.rows:
        return f"{rows} rows != {expect.rows}"
    return ""
