"""What a store URI means: a local folder path, or `s3://bucket/prefix`.

Anything else (an empty string, another scheme, a bad bucket name, an unclean prefix) is a
ConfigError saying which forms are accepted. Credentials never belong in the URI: S3 ones come
from the environment or the AWS credential chain.
"""

from __future__ import annotations

import re
from pathlib import Path

from llm2loss.errors import ConfigError
from llm2loss.store.keys import check_key

_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def parse_uri(uri: str) -> tuple[str, str, str]:
    """(kind, bucket-or-root, prefix) of a store URI; ConfigError for anything else."""
    if not isinstance(uri, str) or not uri.strip():
        raise ConfigError(
            f"invalid store URI {uri!r}: use a local folder path (e.g. ./llm2loss-store) or "
            "s3://bucket/prefix"
        )
    if uri.startswith("s3://"):
        bucket, _, prefix = uri[len("s3://") :].partition("/")
        prefix = prefix.strip("/")
        if not _BUCKET.fullmatch(bucket):
            raise ConfigError(
                f"invalid store URI {uri!r}: an S3 URI is s3://bucket/prefix with a valid "
                "bucket name (3-63 of a-z 0-9 . -); credentials come from the environment, never "
                "from the URI"
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
