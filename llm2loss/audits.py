"""The reading side of finished audits, kept light: manifests, metrics and regression reports.

Everything here reads small JSON files from the store and imports neither torch, pandas nor the
report renderer, so a command that only needs to know what an audit found (`llm2loss audit` of a
finished release, `llm2loss gate`, `llm2loss audits`) starts in about a second.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llm2loss.store import keys as layout
from llm2loss.config import StoreSettings
from llm2loss.errors import NotFoundError
from llm2loss.store import ArtifactStore
from llm2loss.store.checks import check_audit_manifest, contained_path, safe_name

REGRESSION_FILE = "regression.json"


def open_store(store_settings: StoreSettings) -> ArtifactStore:
    """The store these settings name."""
    return ArtifactStore.from_settings(store_settings)


def finished_manifest(store: ArtifactStore, model: str, version: str) -> dict[str, Any] | None:
    """The manifest of the completed audit of `model@version`, or None while there is none."""
    key = layout.audit_manifest_key(model, version)
    if not store.exists(key):
        return None
    # read from a store others can write to: names and keys checked before any is used
    manifest = check_audit_manifest(store.read_json(key), model, version)
    return manifest if manifest.get("status") == "completed" else None


def require_finished(store: ArtifactStore, model: str, version: str) -> dict[str, Any]:
    """The finished audit's manifest; NotFoundError naming the known releases or how to run it."""
    manifest = finished_manifest(store, model, version)
    if manifest is not None:
        return manifest
    if not store.exists(layout.release_key(model, version)):
        from llm2loss import registry

        registry.get(store, model, version)  # raises NotFoundError naming the known ones
    raise NotFoundError(
        f"the audit of {model}@{version} is not finished: run `llm2loss audit {model}@{version}` "
        "first (or wait for the running one)"
    )


def metrics_of(store: ArtifactStore, manifest: dict[str, Any]) -> dict[str, Any]:
    """The audit's metrics.json."""
    return store.read_json(manifest["metrics"])


def regression_of(store: ArtifactStore, manifest: dict[str, Any]) -> dict[str, Any] | None:
    """The audit's regression report against the previous version, None when it has none."""
    key = manifest["metrics"].rsplit("/", 1)[0] + "/" + REGRESSION_FILE
    return store.read_json(key) if store.exists(key) else None


def local_report_path(store: ArtifactStore, manifest: dict[str, Any], cache_dir: str) -> Path:
    """A local path of the audit's index.html: in place for a folder store, else downloaded
    (with the report's own files) under `<cache_dir>/reports/<model>/<version>/`. The manifest
    is checked again and every path is kept inside the store or that folder."""
    model = safe_name(manifest.get("model"), "model name")
    version = safe_name(manifest.get("version"), "version")
    key = check_audit_manifest(manifest, model, version)["report"]  # inside the report folder
    if store.is_local:
        return contained_path(Path(store.uri).resolve(), key)
    dest = contained_path(Path(cache_dir).expanduser() / "reports", model, version)
    folder, _, page = key.rpartition("/")
    for name in store.list(f"{folder}/"):
        rel = name[len(folder) + 1 :]
        if "/" not in rel:  # the report's own files only
            store.download(name, contained_path(dest, rel))
    return contained_path(dest, page)
