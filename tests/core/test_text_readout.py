"""The linear readout of text queries (llm2loss.diagnoser.readout): when it applies, what it
computes, that data rows keep the heads, and that it survives save/load (torch and numpy)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file
from sklearn.linear_model import Ridge

from llm2loss.diagnoser import LossDiagnoser
from llm2loss.diagnoser.numpy_scoring import NotCovered, NumpyDiagnoser
from llm2loss.diagnoser.readout import RIDGE, fit_linear, resolve
from llm2loss.diagnoser.rows import centre_in_place, normalise
from llm2loss.diagnoser.scoring import raw_scores
from llm2loss.errors import WeightsError

DIM = 12


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows that vary along 4 directions with a bent loss, and phrases that also point along the
    other 8, where the rows hardly vary."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(800, DIM)).astype(np.float32)
    X[:, 4:] *= 0.05
    loss = X[:, 0] ** 2 + X[:, 1] * X[:, 2] + 0.5 * X[:, 3] + 0.05 * rng.normal(size=800)
    phrases = rng.normal(size=(40, DIM)).astype(np.float32)
    return X, loss, phrases


def _fit(**kwargs) -> LossDiagnoser:
    X, loss, phrases = _data()
    params = {"n_members": 3, "random_state": 0, "max_epochs": 40, "gap": "center", **kwargs}
    return LossDiagnoser("rank", "mlp", **params).fit(X, loss, text_reference=phrases)


@pytest.mark.parametrize(("objective", "arch", "gap", "expected"), [
    ("rank", "mlp", "center", "linear"), ("regress", "mlp", "center", "linear"),
    ("rank", "mlp", "none", "heads"), ("rank", "linear", "center", "heads"),
    ("familiarity", "mlp", "center", "heads")])
def test_auto_reads_images_queried_with_text_linearly(objective, arch, gap, expected) -> None:
    assert resolve("auto", objective, arch, gap) == expected
    assert resolve("heads", objective, arch, gap) == "heads"


def test_a_linear_function_is_recovered_exactly() -> None:
    rng = np.random.default_rng(1)
    rows = rng.normal(size=(300, 6)).astype(np.float32)
    w = rng.normal(size=(2, 6)).astype(np.float32)
    b = np.array([0.5, -2.0], dtype=np.float32)
    weights, biases = fit_linear(rows, w @ rows.T + b[:, None], ridge=1e-9)
    np.testing.assert_allclose(weights, w, atol=1e-4)
    np.testing.assert_allclose(biases, b, atol=1e-4)


def test_the_readout_is_a_ridge_fit_of_each_members_scores_on_the_training_rows() -> None:
    X, _, phrases = _data()
    d = _fit()
    Z = centre_in_place(normalise(X), d.data_mean_)  # the rows as the heads saw them
    raw = raw_scores(d, Z)
    centred = Z - Z.mean(axis=0)
    alpha = RIDGE * float((centred ** 2).sum()) / DIM
    for k in range(d.n_members):
        ridge = Ridge(alpha=alpha).fit(Z.astype(np.float64), raw[k].astype(np.float64))
        np.testing.assert_allclose(d.readout_weight_[k], ridge.coef_, atol=2e-4)
        np.testing.assert_allclose(d.readout_bias_[k], ridge.intercept_, atol=2e-4)
    # and text rows are scored with it: the member outputs are its scores, calibrated
    rows = centre_in_place(normalise(phrases), d.text_mean_)
    expected = (d.readout_weight_ @ rows.T + d.readout_bias_[:, None] - d.member_center_[:, None]) \
        / d.member_scale_[:, None]
    np.testing.assert_allclose(d.predict_members(phrases, space="text"), expected, atol=1e-4)


def test_directions_the_rows_do_not_vary_in_hardly_move_a_phrase() -> None:
    # two phrases that differ only where the rows hardly vary: the heads, asked at those points,
    # tell them apart; the readout, fitted where the rows are, much less. (gap="none": the two
    # have equal norms, so normalising leaves their first 4 coordinates equal too.)
    _, _, phrases = _data()
    a = phrases[:10].copy()
    b = a.copy()
    b[:, 4:] = -a[:, 4:]
    gaps = {}
    for readout in ("heads", "linear"):
        d = _fit(text_readout=readout, gap="none")
        gaps[readout] = float(np.abs(d.compare(a, b, space="text").differences).mean())
    assert gaps["linear"] < 0.4 * gaps["heads"], gaps  # 0.20-0.24 over random_state 0-3


def test_data_rows_keep_the_heads() -> None:
    X, _, phrases = _data()
    heads, linear = _fit(text_readout="heads"), _fit(text_readout="linear")
    np.testing.assert_array_equal(heads.predict(X), linear.predict(X))
    assert not np.allclose(heads.predict(phrases, space="text"), linear.predict(phrases, space="text"))
    assert heads.readout_weight_ is None and heads.text_readout_ == "heads"


def test_bad_readouts_are_refused() -> None:
    X, loss, phrases = _data()
    with pytest.raises(ValueError, match="unknown text_readout 'mean': choose one of auto, heads, linear"):
        LossDiagnoser(text_readout="mean").fit(X, loss)
    with pytest.raises(ValueError, match="applies to the loss objectives"):
        LossDiagnoser("familiarity", text_readout="linear").fit(X)


def test_the_readout_is_saved_and_scored_alike_by_torch_and_numpy(tmp_path) -> None:
    _, _, phrases = _data()
    d = _fit()
    path = d.save(tmp_path / "d")
    loaded, fast = LossDiagnoser.load(path), NumpyDiagnoser.load(path)
    assert loaded.text_readout_ == fast.text_readout_ == "linear"
    want = d.predict_members(phrases, space="text")
    np.testing.assert_allclose(loaded.predict_members(phrases, space="text"), want, atol=1e-5)
    np.testing.assert_allclose(fast.predict_members(phrases, space="text"), want, atol=1e-5)
    got = fast.compare(phrases[:5], phrases[5:10], space="text").differences
    np.testing.assert_allclose(got, d.compare(phrases[:5], phrases[5:10], space="text").differences,
                               atol=1e-5)


def _rewrite_tensors(path, change) -> None:
    tensors = load_file(str(path / "weights.safetensors"))
    change(tensors)
    save_file(tensors, str(path / "weights.safetensors"))


@pytest.mark.parametrize("damage", ["missing", "nan", "shape"])
def test_a_damaged_readout_is_refused(tmp_path, damage: str) -> None:
    path = _fit().save(tmp_path / "d")

    def change(tensors: dict) -> None:
        if damage == "missing":
            del tensors["readout_weight"]
        elif damage == "nan":
            tensors["readout_bias"] = np.full_like(tensors["readout_bias"], np.nan)
        else:
            tensors["readout_weight"] = np.zeros((3, DIM + 1), dtype=np.float32)

    _rewrite_tensors(path, change)
    with pytest.raises(WeightsError, match="save (the diagnoser|it) again"):
        LossDiagnoser.load(path)
    reason = {"missing": "does not match", "nan": "readout_bias holds NaN or inf",
              "shape": "does not match"}[damage]
    with pytest.raises(NotCovered, match=reason):
        NumpyDiagnoser.load(path)


def test_a_readout_a_heads_diagnoser_was_not_saved_with_is_refused(tmp_path) -> None:
    path = _fit(text_readout="heads").save(tmp_path / "d")
    rng = np.random.default_rng(0)
    _rewrite_tensors(path, lambda t: t.update(readout_weight=rng.normal(size=(3, DIM)).astype(np.float32),
                                              readout_bias=np.zeros(3, dtype=np.float32)))
    with pytest.raises(WeightsError, match="does not match its diagnoser.json"):
        LossDiagnoser.load(path)
    with pytest.raises(NotCovered, match="does not match its diagnoser.json"):
        NumpyDiagnoser.load(path)


@pytest.mark.parametrize("later", ["heads", "linear", "auto"])
def test_a_save_records_the_readout_it_was_fitted_with(tmp_path, later: str) -> None:
    # set_params after fitting changes no answer until the next fit, so the file must not either
    _, _, phrases = _data()
    d = _fit()
    want = d.predict(phrases, space="text")
    d.set_params(text_readout=later)
    path = d.save(tmp_path / "d")
    meta = json.loads((path / "diagnoser.json").read_text())
    assert meta["fitted_text_readout"] == "linear" and meta["params"]["text_readout"] == later
    for loaded in (LossDiagnoser.load(path), NumpyDiagnoser.load(path)):
        assert loaded.text_readout_ == "linear"
        np.testing.assert_allclose(loaded.predict(phrases, space="text"), want, atol=1e-5)


@pytest.mark.parametrize("bad", ["auto", "LINEAR", 1, ["linear"]])
def test_a_tampered_fitted_readout_is_refused(tmp_path, bad) -> None:
    path = _fit().save(tmp_path / "d")
    meta = json.loads((path / "diagnoser.json").read_text())
    meta["fitted_text_readout"] = bad
    (path / "diagnoser.json").write_text(json.dumps(meta))
    with pytest.raises(WeightsError, match="fitted_text_readout"):
        LossDiagnoser.load(path)
    with pytest.raises(NotCovered, match="fitted_text_readout"):
        NumpyDiagnoser.load(path)


def test_the_anchor_refusal_names_the_gap_it_was_given() -> None:
    X, loss, phrases = _data()
    with pytest.raises(ValueError, match=r"linear readout here \(gap='none'\)"):
        LossDiagnoser(n_members=2, max_epochs=2, phrase_anchor=1.0,
                      text_readout="linear").fit(X, loss, text_reference=phrases)


def test_a_diagnoser_saved_before_readouts_loads_with_heads(tmp_path) -> None:
    _, _, phrases = _data()
    d = _fit(text_readout="heads")
    path = d.save(tmp_path / "old")
    meta = json.loads((path / "diagnoser.json").read_text())
    del meta["params"]["text_readout"]  # what a diagnoser saved before readouts holds
    del meta["fitted_text_readout"]
    (path / "diagnoser.json").write_text(json.dumps(meta))
    for loaded in (LossDiagnoser.load(path), NumpyDiagnoser.load(path)):
        assert loaded.text_readout_ == "heads"
        np.testing.assert_allclose(loaded.predict(phrases, space="text"),
                                   d.predict(phrases, space="text"), atol=1e-5)


def test_a_familiarity_file_claiming_a_linear_readout_is_refused(tmp_path) -> None:
    # a familiarity head is never read linearly; a file that says so was changed after saving
    X, _, phrases = _data()
    d = LossDiagnoser("familiarity", n_members=2, max_epochs=2, gap="center").fit(X, text_reference=phrases)
    path = d.save(tmp_path / "fam")
    meta = json.loads((path / "diagnoser.json").read_text())
    assert meta["fitted_text_readout"] == "heads"
    meta["fitted_text_readout"] = "linear"
    (path / "diagnoser.json").write_text(json.dumps(meta))
    with pytest.raises(WeightsError, match="a familiarity head has no linear readout"):
        LossDiagnoser.load(path)
    with pytest.raises(NotCovered, match="a familiarity head has no linear readout"):
        NumpyDiagnoser.load(path)
