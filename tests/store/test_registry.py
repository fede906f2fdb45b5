"""Model releases: register, get, list, unaudited, fetch_weights, and their errors."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from llm2loss import audits, registry
from llm2loss.store import keys as layout
from llm2loss.config import DatasetSpec, ReleaseSpec
from llm2loss.errors import ConfigError, NotFoundError, WeightsError
from llm2loss.store import ArtifactStore, keys


def _release(version: str = "v1", model: str = "spam", **kw) -> ReleaseSpec:
    return ReleaseSpec(
        model=model,
        version=version,
        entrypoint="llm2loss.example_models.spam:naive_bayes",
        dataset=DatasetSpec(name="spamassassin", kind="spamassassin"),
        created_at=kw.pop("created_at", datetime(2024, 1, int(version[1:]), tzinfo=timezone.utc)),
        **kw,
    )


def _weights(path: Path, value: float = 1.0) -> Path:
    save_file({"w": torch.full((3, 2), value)}, str(path))
    return path


def test_register_then_get_round_trips(store: ArtifactStore) -> None:
    release = _release(metadata={"owner": "team-a"}, classes=["ham", "spam"])
    key = registry.register(store, release)
    assert key == "releases/spam/v1/release.json"
    assert registry.get(store, "spam", "v1") == release


def test_register_uploads_weights_beside_release(store: ArtifactStore, tmp_path: Path) -> None:
    key = registry.register(store, _release(), weights_file=_weights(tmp_path / "m.safetensors"))
    got = registry.get(store, "spam", "v1")
    assert got.weights == "releases/spam/v1/weights.safetensors"
    assert store.list("releases/spam/v1/") == [
        "releases/spam/v1/registration.json",
        "releases/spam/v1/release.json",
        "releases/spam/v1/weights.json",
        "releases/spam/v1/weights.safetensors",
    ]
    assert key.endswith("release.json")
    path = registry.fetch_weights(store, got, tmp_path / "cache")
    assert path is not None and path.read_bytes() == (tmp_path / "m.safetensors").read_bytes()
    assert registry.fetch_weights(store, got, tmp_path / "cache") == path  # cached copy reused


def test_fetch_weights_detects_replaced_weights(store: ArtifactStore, tmp_path: Path) -> None:
    registry.register(store, _release(), weights_file=_weights(tmp_path / "m.safetensors"))
    release = registry.get(store, "spam", "v1")
    store.write_bytes(release.weights, b"not the registered weights")
    with pytest.raises(WeightsError, match="do not match"):
        registry.fetch_weights(store, release, tmp_path / "cache")


def test_fetch_weights_none_local_and_missing(store: ArtifactStore, tmp_path: Path) -> None:
    assert registry.fetch_weights(store, _release(), tmp_path) is None
    local = _weights(tmp_path / "local.safetensors")
    assert registry.fetch_weights(store, _release(weights=str(local)), tmp_path) == local
    with pytest.raises(WeightsError, match="neither in the store"):
        registry.fetch_weights(store, _release(weights="releases/spam/v1/nope.pt"), tmp_path)


def test_register_is_idempotent_but_versions_are_immutable(
    store: ArtifactStore, tmp_path: Path
) -> None:
    weights = _weights(tmp_path / "m.safetensors")
    registry.register(store, _release(), weights_file=weights)
    # Same content (a later created_at is only a timestamp): accepted, nothing rewritten.
    later = _release(created_at=datetime(2025, 1, 1, tzinfo=timezone.utc))
    registry.register(store, later, weights_file=weights)
    assert registry.get(store, "spam", "v1").created_at.year == 2024
    with pytest.raises(ConfigError, match="immutable"):
        registry.register(store, _release(task="binary"), weights_file=weights)
    with pytest.raises(ConfigError, match="immutable"):
        registry.register(store, _release(), weights_file=_weights(tmp_path / "o.safetensors", 2.0))
    registry.register(store, _release(task="binary"), weights_file=weights, overwrite=True)
    assert registry.get(store, "spam", "v1").task == "binary"


def test_register_refuses_bad_weights_files(store: ArtifactStore, tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="does not exist"):
        registry.register(store, _release(), weights_file=tmp_path / "missing.safetensors")
    pickle_file = tmp_path / "model.pkl"
    pickle_file.write_bytes(b"\x80\x04K\x01.")
    with pytest.raises(ConfigError, match="safetensors"):
        registry.register(store, _release(), weights_file=pickle_file)
    assert store.list("releases/") == []


def test_get_unknown_release_names_the_known_ones(store: ArtifactStore) -> None:
    registry.register(store, _release("v1"))
    registry.register(store, _release("v2"))
    with pytest.raises(NotFoundError, match=r"spam@v3 \(known: spam@v1, spam@v2\)"):
        registry.get(store, "spam", "v3")
    with pytest.raises(ConfigError, match="version"):
        registry.get(store, "spam", "../../x")


def test_get_names_missing_and_mistyped_fields(store: ArtifactStore) -> None:
    key = keys.release_key("spam", "v1")
    store.write_json(
        key,
        {
            "model": "spam",
            "version": "v1",
            "task": 3,
            "dataset": {"name": "d", "kind": "generated_text"},
        },
    )
    with pytest.raises(ConfigError) as info:
        registry.get(store, "spam", "v1")
    assert "'entrypoint': field required" in str(info.value)
    assert "'task'" in str(info.value)


def test_get_refuses_non_object_and_mismatched_names(store: ArtifactStore) -> None:
    store.write_json(keys.release_key("spam", "v1"), [1, 2])
    with pytest.raises(ConfigError, match="JSON object"):
        registry.get(store, "spam", "v1")
    store.write_json(keys.release_key("spam", "v2"), _release("v1").model_dump(mode="json"))
    with pytest.raises(ConfigError, match="names spam@v1, not spam@v2"):
        registry.get(store, "spam", "v2")
    store.write_bytes(keys.release_key("spam", "v3"), b"{oops")
    with pytest.raises(ConfigError, match="not valid JSON"):
        registry.get(store, "spam", "v3")


def test_list_and_unaudited(store: ArtifactStore) -> None:
    assert registry.list_releases(store) == [] and audits.unaudited(store) == []
    for release in (_release("v2"), _release("v1"), _release("v1", model="cats")):
        registry.register(store, release)
    assert [r.ref for r in registry.list_releases(store)] == ["cats@v1", "spam@v1", "spam@v2"]
    store.write_json(layout.audit_manifest_key("spam", "v1"), {"status": "completed"})
    store.write_json(layout.audit_manifest_key("spam", "v2"), {"status": "failed"})
    assert [r.ref for r in audits.unaudited(store)] == ["cats@v1", "spam@v2"]
