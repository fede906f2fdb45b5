"""Per-process caches of the heavy objects an audit uses: the store, the dataset source, the
encoder and the audited model.

Each is built once per process from small, picklable settings (JSON strings as cache keys), so a
Dask worker that runs many shards loads each once and reuses it, and nothing heavy ever travels
through a task graph: an `AuditContext` carries only the settings, and asks these caches.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from llm2loss.config import DatasetSpec, ReleaseSpec, StoreSettings
from llm2loss.store import ArtifactStore


@functools.lru_cache(maxsize=8)
def _store(settings_json: str) -> ArtifactStore:
    return ArtifactStore.from_settings(StoreSettings.model_validate_json(settings_json))


def get_store(settings: StoreSettings) -> ArtifactStore:
    """The store for these settings, built once per process."""
    return _store(settings.model_dump_json())


@functools.lru_cache(maxsize=8)
def _source(spec_json: str, cache_dir: str) -> Any:
    from llm2loss.sources import build_source

    return build_source(DatasetSpec.model_validate_json(spec_json), cache_dir=Path(cache_dir))


def get_source(spec: DatasetSpec, cache_dir: str) -> Any:
    """The dataset source for this spec, built once per process."""
    return _source(spec.model_dump_json(), str(Path(cache_dir).expanduser()))


@functools.lru_cache(maxsize=4)
def get_encoder(spec: str) -> Any:
    """The encoder for this spec string, loaded once per process."""
    from llm2loss.encoders import build_encoder

    return build_encoder(spec)


@functools.lru_cache(maxsize=2)  # workers outlive audits: keep few audited models alive
def _model(release_json: str, store_json: str, cache_dir: str) -> Any:
    from llm2loss.losses import load_model
    from llm2loss.registry import fetch_weights

    release = ReleaseSpec.model_validate_json(release_json)
    weights = fetch_weights(_store(store_json), release, Path(cache_dir))
    return load_model(release, weights_path=weights)


def get_model(release: ReleaseSpec, store: StoreSettings, cache_dir: str) -> Any:
    """The audited model of this release, loaded once per process."""
    return _model(release.model_dump_json(), store.model_dump_json(), str(Path(cache_dir).expanduser()))
