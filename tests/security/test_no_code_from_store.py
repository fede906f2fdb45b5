"""Nothing loaded from the store executes code: pickles planted where weights belong are refused.

Each payload, if it were unpickled, would create a marker folder; the tests check that loading
fails with a clear refusal and that the marker never appears (also on the Dask workers, which
share this file system).
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from audit_harness import run_flow, small_settings

from llm2loss import audits
from llm2loss import pipeline as stages
from llm2loss import registry
from llm2loss.config import StoreSettings
from llm2loss.diagnoser import LossDiagnoser
from llm2loss.errors import ConfigError, WeightsError


class Payload:
    """Unpickling this runs os.mkdir(marker)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def plant(path: Path, marker: Path) -> Path:
    path.write_bytes(pickle.dumps(Payload(marker)))
    return path


@pytest.mark.integration
@pytest.mark.parametrize(("name", "words"), [("weights.pt", "refusing to load"),
                                             ("weights.safetensors", "not a valid safetensors")])
def test_audit_refuses_pickled_weights(services, tmp_path, cache_dir, spam_releases, name, words):
    release, _ = spam_releases[0]
    marker = tmp_path / "payload-ran"
    cfg = small_settings(StoreSettings(uri=str(tmp_path / "store")), services.scheduler_address, cache_dir)
    store = stages.get_store(cfg.store)
    registry.register(store, release, weights_file=plant(tmp_path / name, marker))
    _, state = run_flow(cfg, release.model, release.version, expect_ok=False)
    exc = state.result(raise_on_failure=False)
    assert isinstance(exc, WeightsError) and words in str(exc), exc
    assert not marker.exists()
    assert audits.finished_manifest(stages.get_store(cfg.store), release.model, release.version) is None


def test_pickle_files_are_refused_at_registration(local_store, tmp_path, spam_releases):
    release, _ = spam_releases[0]
    marker = tmp_path / "payload-ran"
    with pytest.raises((ConfigError, WeightsError), match=r"\.pkl"):
        registry.register(local_store, release, weights_file=plant(tmp_path / "weights.pkl", marker))
    assert local_store.list("") == [] and not marker.exists()


def _saved_diagnoser(path: Path) -> Path:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 8)).astype(np.float32)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    LossDiagnoser(objective="regress", arch="linear", n_members=2).fit(X, rng.random(64)).save(path)
    return path


def test_diagnoser_whose_weights_are_a_pickle_runs_no_code(tmp_path):
    folder = _saved_diagnoser(tmp_path / "diagnoser")
    marker = tmp_path / "payload-ran"
    plant(folder / "weights.safetensors", marker)
    with pytest.raises(WeightsError, match="corrupt"):
        LossDiagnoser.load(folder)
    assert not marker.exists(), "unpickling ran the payload"
