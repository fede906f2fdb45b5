"""A store that someone else can write to: concurrent registration, tampered manifests and locks,
bad entries under releases/, symlinks out of a local store, and the files' modes.

Each test runs on a local folder and on SeaweedFS where the fault exists on both.
"""

from __future__ import annotations

import json
import os
import threading
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import save_file

from llm2loss import audits
from llm2loss import registry
from llm2loss.config import DatasetSpec, ReleaseSpec, StoreSettings
from llm2loss.errors import ConfigError, StoreError
from llm2loss.store import ArtifactStore, keys

ROUNDS = 20


def _release(version: str, owner: str, model: str = "spam") -> ReleaseSpec:
    return ReleaseSpec(model=model, version=version, entrypoint="llm2loss.example_models.spam:naive_bayes",
                       dataset=DatasetSpec(name="spamassassin", kind="spamassassin"),
                       created_at=datetime(2024, 1, 1, tzinfo=timezone.utc), metadata={"owner": owner})


def _settings(store: ArtifactStore) -> StoreSettings:
    return StoreSettings(uri=store.uri, endpoint_url=store.endpoint_url)


def test_two_concurrent_registrations_of_one_version_have_one_winner(store, tmp_path):
    """20 rounds of two threads registering the same new version with different content: exactly
    one wins, the other gets one line, and release.json and the weights come from the winner."""
    weights = {}
    for name, value in (("a", 1.0), ("b", 2.0)):
        weights[name] = tmp_path / f"{name}.safetensors"
        save_file({"w": torch.full((64, 64), value)}, str(weights[name]))
    for round_ in range(ROUNDS):
        version = f"v{round_}"
        barrier = threading.Barrier(2)
        outcome: dict[str, object] = {}

        def register(name: str) -> None:
            barrier.wait()
            try:
                outcome[name] = registry.register(store, _release(version, name), weights_file=weights[name])
            except ConfigError as exc:
                outcome[name] = exc

        threads = [threading.Thread(target=register, args=(n,)) for n in ("a", "b")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        errors = [v for v in outcome.values() if isinstance(v, ConfigError)]
        assert len(errors) == 1, outcome
        assert "immutable" in str(errors[0]) and "\n" not in str(errors[0])
        winner = next(n for n, v in outcome.items() if not isinstance(v, ConfigError))
        release = registry.get(store, "spam", version)
        assert release.metadata["owner"] == winner
        path = registry.fetch_weights(store, release, tmp_path / "cache" / version)
        assert path.read_bytes() == weights[winner].read_bytes()


def test_a_tampered_manifest_cannot_lead_report_outside_its_folder(store, tmp_path):
    """`llm2loss report` builds paths from the manifest: a manifest naming another model, or a
    report key with '..', is refused before any path is built, and nothing is written."""
    cache = tmp_path / "cache"
    cfg = SimpleNamespace(store=_settings(store), cache_dir=str(cache))
    key = keys.audit_manifest_key("spam", "v1")
    good = {"status": "completed", "model": "spam", "version": "v1",
            "report": "audits/spam/v1/report/index.html", "completed_at": "now"}
    store.write_bytes("audits/spam/v1/report/index.html", b"<html></html>")
    tampered = [
        {**good, "model": "../../.."},
        {**good, "report": "../../../../etc/passwd"},
        {**good, "report": "audits/other/v1/report/index.html"},
        {**good, "report": "audits/spam/v1/report/../../../../../x"},
        ["not", "an", "object"],
    ]
    for manifest in tampered:
        store.write_json(key, manifest)
        with pytest.raises(StoreError, match="cannot be trusted"):
            audits.finished_manifest(store, "spam", "v1")
        if isinstance(manifest, dict):
            with pytest.raises((StoreError, ConfigError)):
                audits.local_report_path(store, manifest, cfg.cache_dir)
    assert not cache.exists() or not any(cache.rglob("*"))
    store.write_json(key, good)
    path = audits.local_report_path(store, audits.finished_manifest(store, "spam", "v1"), cfg.cache_dir)
    assert path.read_bytes() == b"<html></html>"
    root = Path(store.uri) if store.is_local else cache
    assert path.resolve().is_relative_to(root.resolve())


def test_a_planted_diagnoser_folder_never_becomes_a_path(store, tmp_path, caplog):
    """Only the diagnoser names this version writes (`rank-mlp`, ...) become folder names: any
    other listed name is skipped with a warning, so a planted key cannot pick the path."""
    store.write_bytes("audits/spam/v1/diagnosers/evil/diagnoser.json", b"planted")
    dest = tmp_path / "deep" / "dest"
    with caplog.at_level("WARNING"):
        assert audits.load_diagnosers(store, "spam", "v1", dest) == {}
    assert "'evil'" in caplog.text
    assert not dest.exists()


def test_bad_entries_under_releases_are_skipped_with_a_warning(store, caplog):
    registry.register(store, _release("v1", "a"))
    store.write_bytes("releases/spam/v2/release.json", b"{not json")
    store.write_bytes("releases/bad name/v1/release.json", b"{}")
    store.write_bytes("releases/.trash/v1/release.json", b"{}")
    with caplog.at_level("WARNING"):
        assert [r.ref for r in registry.list_releases(store)] == ["spam@v1"]
        assert [r.ref for r in audits.unaudited(store)] == ["spam@v1"]
    warned = caplog.text
    assert "spam@v2" in warned and "bad name" in warned and ".trash" in warned


@pytest.mark.parametrize("body", [b"[1]", b'"x"', b"null", b"\xff\xfe\x00garbage", b'{"owner": 3}',
                                  b'{"owner": "o", "expires_at": "soon"}'])
def test_a_lock_that_is_not_a_lock_is_broken_and_leaves_no_temp_files(store, body):
    """Such a lock was not written by llm2loss: it counts as expired, so the audit flow's
    take_lock breaks it (no raw AttributeError / UnicodeDecodeError, no lock held forever)."""
    from llm2loss.pipeline.locks import take_lock

    key = keys.audit_lock_key("spam", "v1")
    for take in (lambda: store.acquire_lock(key, "me", ttl_s=60), lambda: take_lock(store, key, "me")):
        store.write_bytes(key, body)
        assert take()
        assert json.loads(store.read_bytes(key))["owner"] == "me"
        assert store.release_lock(key, "me")
        assert store.list("audits/") == []
        if store.is_local:  # list() hides temporary files: look at the folder itself
            assert [p.name for p in Path(store.uri).rglob("*") if p.is_file()] == []
    store.write_bytes(key, body)
    assert not store.release_lock(key, "me")  # not ours: left alone


def test_a_symlink_inside_a_local_store_cannot_lead_writes_outside_it(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    store = ArtifactStore(str(tmp_path / "store"))
    (tmp_path / "store" / "releases").mkdir(parents=True)
    os.symlink(elsewhere, tmp_path / "store" / "releases" / "newmodel")
    with pytest.raises(StoreError, match="outside"):
        registry.register(store, _release("v1", "a", model="newmodel"))
    assert list(elsewhere.iterdir()) == []


def test_local_store_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        store = ArtifactStore(str(tmp_path / "store"))
        store.write_json("a/manifest.json", {"k": 1})
        store.write_part("a/stage", 0, __import__("pyarrow").table({"id": ["x"]}))
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "store").rglob("*") if p.is_file()}
    assert modes and set(modes.values()) == {0o644}, modes


def test_a_planted_weights_uri_cannot_name_a_file_outside_the_cache(local_store, tmp_path):
    release = _release("v1", "a").model_copy(update={"weights": "s3://some-bucket/models/.."})
    with pytest.raises(StoreError, match="unsafe weights file name"):
        registry.fetch_weights(local_store, release, tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


def test_a_tampered_manifest_of_another_release_does_not_fail_this_audit(store, caplog):
    """The regression step looks for the previous version's audit: a manifest of another release
    that cannot be trusted is skipped with a warning naming it, and a good one is still found."""
    registry.register(store, _release("v1", "a"))
    registry.register(store, _release("v2", "a").model_copy(
        update={"created_at": datetime(2024, 2, 1, tzinfo=timezone.utc)}))
    current = _release("v3", "a").model_copy(update={"created_at": datetime(2024, 3, 1, tzinfo=timezone.utc)})
    plan = SimpleNamespace(dataset_fingerprint="fp", encoder_fingerprint="enc")
    good = {"status": "completed", "model": "spam", "version": "v1", "dataset_fingerprint": "fp",
            "encoder_fingerprint": "enc", "report": "audits/spam/v1/report/index.html"}
    store.write_json(keys.audit_manifest_key("spam", "v1"), good)
    store.write_json(keys.audit_manifest_key("spam", "v2"), {**good, "version": "../../x"})
    with caplog.at_level("WARNING"):
        assert audits.previous_audit(store, current, dataset_fingerprint=plan.dataset_fingerprint,
                                     encoder_fingerprint=plan.encoder_fingerprint) == good
    assert "spam@v2" in caplog.text
