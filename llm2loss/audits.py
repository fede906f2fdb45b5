"""The reading side of finished audits, kept light: manifests, metrics and regression reports.

The one answer to "is this release audited?" is here (`finished_manifest`, `is_audited`,
`unaudited`), with the previous audit a new one compares against, the diagnosers of an audit and
the local path of its report. Everything but `load_diagnosers` reads small JSON files from the
store and imports neither torch, pandas nor the report renderer, so a command that only needs to
know what an audit found (`llm2loss audit` of a finished release, `llm2loss gate`,
`llm2loss audits`) starts in about a second.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llm2loss.store import keys as layout
from llm2loss.config import ReleaseSpec, StoreSettings
from llm2loss.errors import NotFoundError, StoreError
from llm2loss.store import ArtifactStore
from llm2loss.store.checks import check_audit_manifest, contained_path, safe_name

if TYPE_CHECKING:
    from llm2loss.diagnoser import LossDiagnoser

log = logging.getLogger(__name__)


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


def is_audited(store: ArtifactStore, model: str, version: str) -> bool:
    """True when `model@version` has a completed audit (`finished_manifest` is not None)."""
    return finished_manifest(store, model, version) is not None


def unaudited(store: ArtifactStore) -> list[ReleaseSpec]:
    """Registered releases without a completed audit, oldest first per model.

    A release whose manifest cannot be trusted (`finished_manifest` raises StoreError) is left
    out with a warning: auditing it again would stop on the same manifest.
    """
    from llm2loss.registry import list_releases

    todo = []
    for release in list_releases(store):
        try:
            if not is_audited(store, release.model, release.version):
                todo.append(release)
        except StoreError as exc:
            log.warning("skipping %s: %s", release.ref, exc)
    return todo


def previous_audit(store: ArtifactStore, release: ReleaseSpec, *, dataset_fingerprint: str,
                   encoder_fingerprint: str) -> dict[str, Any] | None:
    """The manifest of the latest release of the same model, older than `release`, audited on
    the same dataset and encoder (the fingerprints); None when there is none."""
    from llm2loss.registry import list_releases

    best: tuple[Any, dict[str, Any]] | None = None
    for other in list_releases(store):
        if other.model != release.model or other.version == release.version:
            continue
        if other.created_at >= release.created_at:
            continue
        try:
            manifest = finished_manifest(store, other.model, other.version)
        except StoreError as exc:  # another release's tampered manifest must not fail this audit
            log.warning("skipping %s as the previous audit: %s", other.ref, exc)
            continue
        if manifest is None:
            continue
        if (manifest.get("dataset_fingerprint"), manifest.get("encoder_fingerprint")) != (
            dataset_fingerprint,
            encoder_fingerprint,
        ):
            continue
        if best is None or other.created_at > best[0]:
            best = (other.created_at, manifest)
    return None if best is None else best[1]


def download_diagnosers(store: ArtifactStore, model: str, version: str, dest: Path) -> dict[str, Path]:
    """Every diagnoser folder of a completed audit, downloaded under `dest`: {name: folder}.

    Only the names this version writes (`<objective>-<arch>`) become a path; others are skipped
    with a warning. Nothing is loaded (no torch): `load_diagnosers` or a torch-free scorer reads
    the folders."""
    root = layout.diagnosers_prefix(model, version)
    names = {key[len(root) + 1 :].split("/", 1)[0] for key in store.list(f"{root}/")}
    known = {f"{o}-{a}" for o in layout.OBJECTIVES for a in layout.ARCHS}
    for name in sorted(names - known):  # never a path: only the known names become one
        log.warning("skipping %r under %s: not a diagnoser this version writes", name, root)
    folders = {}
    for name in sorted(names & known):
        objective, arch = name.split("-", 1)
        folders[name] = dest / name
        store.download_dir(layout.diagnoser_prefix(model, version, objective, arch), folders[name])
    return folders


def load_diagnosers(store: ArtifactStore, model: str, version: str, dest: Path) -> dict[str, LossDiagnoser]:
    """Download and load every diagnoser of a completed audit (safetensors + JSON, no code run)."""
    from llm2loss.diagnoser import LossDiagnoser

    return {name: LossDiagnoser.load(folder)
            for name, folder in download_diagnosers(store, model, version, dest).items()}


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
    model = safe_name(manifest.get("model"), "model name")
    version = safe_name(manifest.get("version"), "version")
    key = layout.regression_key(model, version)
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
