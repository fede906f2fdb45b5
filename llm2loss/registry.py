"""Model releases: register one, read one, list them (which are audited: `llm2loss.audits`).

A release is `releases/<model>/<version>/release.json` (a `ReleaseSpec`), with its weights, when
given, uploaded beside it as `weights.<ext>` plus a `weights.json` sidecar (size, sha256). A
registration first creates `registration.json` (the release's content and its weights' sha256)
only if absent, so of two concurrent registrations of one version exactly one goes on; then the
weights go and release.json last, so a release is visible only once complete. Versions are
immutable: registering an existing version with different content is refused unless
`overwrite=True`. Listing skips, with a warning, entries that are not valid releases.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from llm2loss.config import ReleaseSpec
from llm2loss.errors import ConfigError, NotFoundError, StoreError, WeightsError
from llm2loss.store import ArtifactStore, PartInfo, keys
from llm2loss.store.checks import safe_name

log = logging.getLogger(__name__)


def _comparable(release: ReleaseSpec) -> dict[str, Any]:
    """The content that makes a release what it is (created_at is only a timestamp)."""
    return release.model_dump(mode="json", exclude={"created_at"})


def register(
    store: ArtifactStore,
    release: ReleaseSpec,
    *,
    weights_file: Path | None = None,
    overwrite: bool = False,
) -> str:
    """Write `release` (and `weights_file` beside it) to the store; return the release.json key.

    Atomic against a concurrent registration of the same version: a registration record naming
    the release's content and its weights' sha256 (`registration.json`) is created only if absent
    (a hard link locally, a conditional put on S3), and only the caller that created it uploads
    the weights and release.json. Registering the same content again is a no-op (it completes a
    registration that stopped half-way); different content for an existing version raises
    ConfigError unless `overwrite`.
    """
    key = keys.release_key(release.model, release.version)
    info: PartInfo | None = None
    if weights_file is not None:
        weights_file = Path(weights_file)
        if not weights_file.is_file():
            raise WeightsError(
                f"weights file {weights_file} does not exist; give the path of a .safetensors "
                "or .pt file"
            )
        wkey = keys.weights_key(release.model, release.version, weights_file.suffix.lower())
        info = PartInfo.of_file(weights_file, wkey)
        release = release.model_copy(update={"weights": wkey})
    record = {"release": _comparable(release), "weights": None if info is None else info.model_dump()}
    record = json.loads(json.dumps(record, sort_keys=True))  # as it reads back from the store
    record_key = keys.registration_key(release.model, release.version)
    if overwrite:
        store.write_json(record_key, record)
    elif store.exists(key) and not store.exists(record_key):  # registered before records existed
        if _same_as_stored(store, release, info):
            return key
        raise _immutable(release)
    elif not store.create_json_if_absent(record_key, record):
        if _read_record(store, record_key) != record:
            raise _immutable(release)
        if store.exists(key):
            return key  # the same content is registered already
    if info is not None and weights_file is not None:
        store.upload(weights_file, info.key)
        store.write_json(keys.weights_info_key(release.model, release.version), info.model_dump())
    store.write_json(key, release.model_dump(mode="json"))
    log.info("registered %s at %s", release.ref, key)
    return key


def _immutable(release: ReleaseSpec) -> ConfigError:
    return ConfigError(
        f"release {release.ref} already exists with different content (or another registration of "
        "it won) and versions are immutable: register it as a new version (e.g. bump the version) "
        "or pass overwrite=True"
    )


def _same_as_stored(store: ArtifactStore, release: ReleaseSpec, info: PartInfo | None) -> bool:
    existing = get(store, release.model, release.version)
    same = _comparable(existing) == _comparable(release)
    return same and (info is None or _stored_weights_info(store, release) == info)


def _read_record(store: ArtifactStore, key: str) -> Any:
    """The registration record at `key` as parsed JSON, or None when it is unreadable."""
    try:
        return json.loads(store.read_bytes(key))
    except (ValueError, UnicodeDecodeError, NotFoundError):
        return None


def _stored_weights_info(store: ArtifactStore, release: ReleaseSpec) -> PartInfo | None:
    try:
        return PartInfo.model_validate(
            store.read_json(keys.weights_info_key(release.model, release.version))
        )
    except (NotFoundError, ValidationError, StoreError):
        return None


def _known(store: ArtifactStore) -> list[str]:
    return [f"{m}@{v}" for m, v in _release_names(store)]


def _release_names(store: ArtifactStore) -> list[tuple[str, str]]:
    """(model, version) of every release.json under releases/ whose names are safe; an entry
    with an unsafe name (`bad name`, `.trash`) is skipped with a warning naming it."""
    names = []
    for key in store.list(keys.all_releases_prefix()):
        found = keys.release_names_of(key)
        if found is not None:
            try:
                keys.release_key(*found)
            except ConfigError as exc:
                log.warning("skipping %s in %s: %s", key, store.describe(), exc)
                continue
            names.append(found)
    return names


def validation_problems(exc: ValidationError) -> str:
    """pydantic's errors as one clause: `'field.path': message; ...` (the CLI's wording too)."""
    problems = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "(top level)"
        problems.append(f"'{field}': {err['msg'].lower()}")
    return "; ".join(problems)


def get(store: ArtifactStore, model: str, version: str) -> ReleaseSpec:
    """The release `model@version`; NotFoundError naming the known ones when it is not there."""
    key = keys.release_key(model, version)
    try:
        raw = store.read_bytes(key)  # StoreError (credentials, unreachable) passes through as is
    except NotFoundError:
        known = ", ".join(_known(store)) or "none"
        raise NotFoundError(
            f"unknown release {model}@{version} (known: {known}); register it first with "
            "`llm2loss register`"
        ) from None
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ConfigError(
            f"release.json of {model}@{version} ({key}) is not valid JSON ({exc}); register the "
            "release again (overwrite=True)"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"release.json of {model}@{version} ({key}) must be a JSON object; register the "
            "release again"
        )
    try:
        release = ReleaseSpec.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            f"release.json of {model}@{version} ({key}) is invalid: {validation_problems(exc)}; "
            "fix these fields and register it again (overwrite=True)"
        ) from None
    if (release.model, release.version) != (model, version):
        raise ConfigError(
            f"release.json at {key} names {release.ref}, not {model}@{version}; register the "
            "release again so its file and its name agree"
        )
    return release


def list_releases(store: ArtifactStore) -> list[ReleaseSpec]:
    """Every registered release, sorted by model then created_at."""
    releases = []
    for model, version in _release_names(store):
        try:
            releases.append(get(store, model, version))
        except ConfigError as exc:  # one bad release.json must not hide all the others
            log.warning("skipping %s@%s: %s", model, version, exc)
    return sorted(releases, key=lambda r: (r.model, r.created_at, r.version))


def fetch_weights(store: ArtifactStore, release: ReleaseSpec, cache_dir: Path) -> Path | None:
    """A local path to the release's weights (None when it has none).

    `release.weights` may be a store key (downloaded into `cache_dir/weights/<model>/<version>/`
    and checked against its sidecar; a cached copy that still matches is reused), an s3:// URI
    (fetched with the store's endpoint and the environment's credentials), or a local path.
    """
    if release.weights is None:
        return None
    ref = release.weights
    dest_dir = Path(cache_dir).expanduser() / "weights" / release.model / release.version
    if ref.startswith("s3://"):
        bucket_key = ref[len("s3://") :]
        if "/" not in bucket_key:
            raise WeightsError(f"weights URI {ref!r} has no object key; use s3://bucket/key")
        prefix, _, name = bucket_key.rpartition("/")
        source = ArtifactStore(f"s3://{prefix}", endpoint_url=store.endpoint_url)
        name = safe_name(name, "weights file name")  # it becomes a local file name: never '..'
        return _download_weights(source, name, dest_dir / name, None, release)
    local = Path(ref).expanduser()
    try:
        in_store = store.exists(ref)
    except ConfigError:
        in_store = False
    if in_store:
        expect = _stored_weights_info(store, release)
        return _download_weights(store, ref, dest_dir / ref.rsplit("/", 1)[-1], expect, release)
    if local.is_file():
        return local
    raise WeightsError(
        f"weights {ref!r} of {release.ref} are neither in the store {store.describe()} nor a "
        "local file; register the release again with weights_file=... or fix release.weights"
    )


def _download_weights(
    store: ArtifactStore, key: str, dest: Path, expect: PartInfo | None, release: ReleaseSpec
) -> Path:
    if expect is not None and dest.is_file() and PartInfo.of_file(dest, key) == expect:
        return dest
    try:
        store.download(key, dest)
    except NotFoundError:
        raise WeightsError(
            f"weights {key!r} of {release.ref} are missing from {store.describe()}; register "
            "the release again with its weights file"
        ) from None
    if expect is not None and PartInfo.of_file(dest, key) != expect:
        os.replace(dest, dest.with_suffix(dest.suffix + ".bad"))
        raise WeightsError(
            f"weights {key!r} of {release.ref} do not match their recorded sha256/size "
            "(corrupted or replaced); register the release again with the right weights file"
        )
    return dest


__all__ = ["register", "get", "list_releases", "fetch_weights"]
