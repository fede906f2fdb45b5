"""The S3 backend of the artifact store: objects in `s3://bucket/prefix` through boto3.

Requests are retried with backoff and have short timeouts, so a dead server fails within
seconds. Every botocore error becomes one clear sentence (NotFoundError or StoreError) that
never contains credentials: those come only from the environment or the AWS credential chain.
Locks and create-if-absent records use conditional puts (If-None-Match / If-Match). boto3 is
imported only when an S3 store is opened. Used only by `llm2loss.store.ArtifactStore`.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from llm2loss.errors import NotFoundError, StoreError
from llm2loss.store.checks import lock_body
from llm2loss.store.keys import check_key


class S3Backend:
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
                    raise
        except NotFoundError:
            return False
        return True

    def create_if_absent(self, key: str, data: bytes) -> bool:
        """Put `data` at `key` unless an object is there (If-None-Match: *); True when put."""
        return self._conditional("put_object", key, Body=data, IfNoneMatch="*")

    def acquire_lock(self, key: str, owner: str, ttl_s: float) -> bool:
        body = json.dumps({"owner": owner, "expires_at": time.time() + ttl_s}).encode()
        if self.create_if_absent(key, body):
            return True
        try:
            with self._errors("read lock", key):
                got = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
                data, etag = got["Body"].read(), got["ETag"]
        except NotFoundError:  # released between our put and our read: try once more
            return self.create_if_absent(key, body)
        held = lock_body(data) or {"owner": None, "expires_at": 0.0}  # not a lock: expired
        if held["owner"] == owner:  # our own lock: extend its expiry
            return self._conditional("put_object", key, Body=body, IfMatch=etag)
        if held["expires_at"] > time.time():
            return False
        # Expired: take it over only if nobody changed it since we read it.
        return self._conditional("put_object", key, Body=body, IfMatch=etag)

    def release_lock(self, key: str, owner: str) -> bool:
        try:
            with self._errors("read lock", key):
                got = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
                held, etag = lock_body(got["Body"].read()), got["ETag"]
        except NotFoundError:
            return False
        if held is None or held["owner"] != owner:
            return False
        return self._conditional("delete_object", key, IfMatch=etag)
