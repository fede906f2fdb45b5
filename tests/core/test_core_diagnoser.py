"""LossDiagnoser on data with a known answer: the planted region is found, members behave as an
ensemble, save/load round-trips, the modality-gap option works, and every bad input is refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from planted_region import DIM, make_planted
from llm2loss import Comparison, LossDiagnoser
from llm2loss.errors import DataError, NotFittedError, NotFoundError, WeightsError


def _unit(X: np.ndarray) -> np.ndarray:
    return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)


# ---------------------------------------------------------------- quality on a planted region
def test_ranker_finds_planted_region(planted, ranker):
    pred = ranker.predict(planted.X_test)
    rho, p = spearmanr(pred, planted.loss_test)
    assert rho > 0.15 and p < 1e-6
    assert roc_auc_score(planted.region_test, pred) > 0.95


def test_compare_inside_vs_outside_region(planted, ranker):
    inside = np.repeat(planted.centres[:1], 11, axis=0)
    outside = planted.centres[1:]
    c = ranker.compare(inside, outside)
    assert isinstance(c, Comparison)
    assert c.p_higher.shape == (11,) and c.differences.shape == (5, 11)
    assert c.quartiles.shape == (5, 11)
    assert (c.p_higher > 0.9).all()
    assert (c.quartiles[0] > 0).all()          # even the least convinced member agrees
    reverse = ranker.compare(outside, inside)
    np.testing.assert_allclose(reverse.differences, -c.differences, rtol=1e-5, atol=1e-5)


def test_predict_is_mean_of_members_and_members_differ(planted, ranker):
    members = ranker.predict_members(planted.X_test)
    assert members.shape == (5, len(planted.X_test))
    np.testing.assert_allclose(ranker.predict(planted.X_test), members.mean(axis=0))
    # own initialisation and data order per member: no two members are identical
    assert min(np.abs(members[i] - members[j]).max()
               for i in range(5) for j in range(i + 1, 5)) > 1e-3


def test_rank_members_standardised_on_training_data(planted, ranker):
    members = ranker.predict_members(planted.X_train)
    np.testing.assert_allclose(members.mean(axis=1), 0.0, atol=1e-3)
    np.testing.assert_allclose(members.std(axis=1), 1.0, atol=1e-3)


def test_predict_ignores_input_scale(planted, ranker):
    np.testing.assert_allclose(ranker.predict(planted.X_test * 7.0),
                               ranker.predict(planted.X_test), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("arch", ["linear", "mlp"])
def test_regressor_orders_and_speaks_loss_units(planted, arch):
    d = LossDiagnoser("regress", arch, n_members=3, random_state=1).fit(
        planted.X_train, planted.loss_train)
    pred = d.predict(planted.X_test)
    assert spearmanr(pred, planted.loss_test)[0] > 0.15
    inside = pred[planted.region_test].mean()
    outside = pred[~planted.region_test].mean()
    # in loss units: the planted region loses ~3 more on average, the rest ~0.3
    assert inside > outside + 1.0 and 0.0 < outside < 1.0


def test_linear_ranker_finds_region(planted):
    d = LossDiagnoser("rank", "linear", n_members=3).fit(planted.X_train, planted.loss_train)
    assert roc_auc_score(planted.region_test, d.predict(planted.X_test)) > 0.95


def test_same_seed_same_model_other_seed_other_model(planted):
    kw = dict(n_members=2, max_epochs=3)
    a = LossDiagnoser("rank", "mlp", random_state=3, **kw).fit(planted.X_train, planted.loss_train)
    b = LossDiagnoser("rank", "mlp", random_state=3, **kw).fit(planted.X_train, planted.loss_train)
    c = LossDiagnoser("rank", "mlp", random_state=4, **kw).fit(planted.X_train, planted.loss_train)
    np.testing.assert_array_equal(a.predict(planted.X_test), b.predict(planted.X_test))
    assert not np.allclose(a.predict(planted.X_test), c.predict(planted.X_test))


def test_early_stopping_stops_before_max_epochs(planted):
    d = LossDiagnoser("rank", "mlp", n_members=2, max_epochs=200, patience=2).fit(
        planted.X_train, planted.loss_train)
    assert d.n_epochs_ < 200
    assert len(d.validation_scores_) == 2 and min(d.validation_scores_) > 0.1
    off = LossDiagnoser("rank", "mlp", n_members=2, max_epochs=4, early_stopping=False).fit(
        planted.X_train, planted.loss_train)
    assert off.n_epochs_ == 4


def test_mixed_precision_trains(planted):
    d = LossDiagnoser("rank", "linear", n_members=2, mixed_precision=True).fit(
        planted.X_train, planted.loss_train)
    assert roc_auc_score(planted.region_test, d.predict(planted.X_test)) > 0.9


# ---------------------------------------------------------------- familiarity
@pytest.mark.parametrize("negatives", ["random", "moments"])
def test_familiarity_separates_data_from_random_vectors(planted, negatives):
    d = LossDiagnoser("familiarity", "mlp", n_members=3, negatives=negatives).fit(
        planted.X_train)
    rand = _unit(np.random.default_rng(9).standard_normal((500, DIM)))
    s_in, s_out = d.predict(planted.X_test), d.predict(rand)
    labels = np.r_[np.ones(len(s_in)), np.zeros(len(s_out))]
    assert roc_auc_score(labels, np.r_[s_in, s_out]) > 0.95


def test_familiarity_ignores_loss(planted, familiarity):
    assert familiarity.predict(planted.X_test).shape == (len(planted.X_test),)
    with_loss = LossDiagnoser("familiarity", "mlp", random_state=0).fit(
        planted.X_train, planted.loss_train)
    np.testing.assert_array_equal(with_loss.predict(planted.X_test),
                                  familiarity.predict(planted.X_test))


def test_predict_in_small_chunks_equals_one_chunk(planted, ranker, monkeypatch):
    import llm2loss.diagnoser.scoring as scoring_module

    whole = ranker.predict_members(planted.X_test)
    monkeypatch.setattr(scoring_module, "_PREDICT_CHUNK", 7)
    np.testing.assert_allclose(ranker.predict_members(planted.X_test), whole, rtol=1e-5, atol=1e-5)


def test_rows_whose_sum_overflows_are_not_taken_for_nan(planted, ranker):
    X = planted.X_test[:4].copy()
    X[1] = 3e38                     # finite, but its float32 row sum overflows to inf
    pred = ranker.predict(X)
    assert np.isfinite(pred).all()  # scored like the same direction at unit length
    np.testing.assert_allclose(pred[1], ranker.predict(np.ones((1, X.shape[1]), np.float32))[0],
                               rtol=1e-5)
    X[2, 5] = np.nan
    with pytest.raises(DataError, match=r"1 rows with NaN or inf \(first rows: 2\)"):
        ranker.predict(X)


def _numpy_peak_bytes(fn) -> int:
    """Peak bytes allocated through numpy (tracemalloc sees numpy's buffers) while fn runs."""
    import tracemalloc

    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("gap", ["none", "center"])
def test_fit_copies_the_embeddings_at_most_once_and_predict_not_at_all(gap):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300_000, 128), dtype=np.float32)  # several predict chunks
    loss = rng.random(300_000)
    d = LossDiagnoser("rank", "linear", n_members=2, max_epochs=1, gap=gap, device="cpu")
    d.fit(X[:100], loss[:100]).predict(X[:100])  # torch imports lazily on first use: not ours
    fit_peak = _numpy_peak_bytes(lambda: d.fit(X, loss))
    assert fit_peak < 1.4 * X.nbytes, f"fit allocated {fit_peak / X.nbytes:.2f}x the matrix"
    predict_peak = _numpy_peak_bytes(lambda: d.predict(X))
    assert predict_peak < 0.4 * X.nbytes, f"predict allocated {predict_peak / X.nbytes:.2f}x"


def test_a_read_only_query_is_scored_without_warnings(planted, ranker):
    import warnings

    X = planted.X_test.copy()
    X.flags.writeable = False       # as np.load(..., mmap_mode="r") gives it
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_allclose(ranker.predict(X), ranker.predict(planted.X_test), rtol=1e-6)


# ---------------------------------------------------------------- scikit-learn's contract
def test_sklearn_clone_copies_the_parameters_and_refits_to_the_same_answer(planted, ranker):
    from sklearn.base import clone

    copy = clone(ranker)
    assert copy is not ranker and not hasattr(copy, "heads_")  # parameters only, unfitted
    assert copy.get_params(deep=True) == copy.get_params(deep=False) == ranker.get_params()
    copy.fit(planted.X_train, planted.loss_train)
    np.testing.assert_allclose(copy.predict_members(planted.X_test),
                               ranker.predict_members(planted.X_test), rtol=1e-5, atol=1e-5)


def test_set_params_returns_the_estimator_and_refuses_unknown_names():
    d = LossDiagnoser()
    assert d.set_params(n_members=3, arch="linear") is d
    assert (d.n_members, d.arch) == (3, "linear")
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['members'\].*n_members"):
        d.set_params(members=3)


# ---------------------------------------------------------------- save / load
def test_save_load_round_trip(tmp_path, planted, ranker):
    out = ranker.save(tmp_path / "rank-mlp")
    assert sorted(p.name for p in out.iterdir()) == ["diagnoser.json", "weights.safetensors"]
    loaded = LossDiagnoser.load(out)
    np.testing.assert_array_equal(loaded.predict_members(planted.X_test),
                                  ranker.predict_members(planted.X_test))
    assert loaded.get_params() == {**ranker.get_params(), "device": None}


def test_save_load_keeps_regress_transform_and_text_mean(tmp_path, planted):
    texts = _unit(planted.X_test[:20] + 0.5)
    d = LossDiagnoser("regress", "linear", n_members=2, gap="center").fit(
        planted.X_train, planted.loss_train, text_reference=texts)
    loaded = LossDiagnoser.load(d.save(tmp_path / "d"))
    np.testing.assert_array_equal(loaded.predict(texts[:1], space="text"),
                                  d.predict(texts[:1], space="text"))


def test_load_missing_directory_names_the_fix(tmp_path):
    with pytest.raises(NotFoundError, match="diagnoser.json is missing"):
        LossDiagnoser.load(tmp_path / "nothing")


def test_load_refuses_corrupt_json(tmp_path, ranker):
    out = ranker.save(tmp_path / "d")
    (out / "diagnoser.json").write_text("{not json")
    with pytest.raises(WeightsError, match="save it again"):
        LossDiagnoser.load(out)


def test_load_refuses_foreign_format(tmp_path, ranker):
    out = ranker.save(tmp_path / "d")
    meta = json.loads((out / "diagnoser.json").read_text())
    meta["format"] = "something-else"
    (out / "diagnoser.json").write_text(json.dumps(meta))
    with pytest.raises(WeightsError, match="format"):
        LossDiagnoser.load(out)


def test_load_refuses_mismatched_weights(tmp_path, ranker):
    out = ranker.save(tmp_path / "d")
    meta = json.loads((out / "diagnoser.json").read_text())
    meta["params"]["hidden"] = meta["params"]["hidden"] + 1
    (out / "diagnoser.json").write_text(json.dumps(meta))
    with pytest.raises(WeightsError, match="does not match"):
        LossDiagnoser.load(out)


# ---------------------------------------------------------------- modality gap
@pytest.fixture(scope="module")
def gapped(planted):
    """Text embeddings = data embeddings pushed along one shared direction (a modality gap)."""
    shift = _unit(np.random.default_rng(5).standard_normal((1, DIM)))[0]
    texts_test = _unit(planted.X_test + 1.5 * shift)
    texts_ref = _unit(planted.X_train[:200] + 1.5 * shift)
    return shift, texts_test, texts_ref


def test_gap_center_recovers_region_from_shifted_text(planted, gapped):
    _, texts_test, texts_ref = gapped
    d = LossDiagnoser("rank", "linear", n_members=3, gap="center").fit(
        planted.X_train, planted.loss_train, text_reference=texts_ref)
    assert roc_auc_score(planted.region_test, d.predict(texts_test, space="text")) > 0.9
    assert d.text_mean_ is not None and d.data_mean_.shape == (DIM,)
    # without a stored reference the query batch itself is the reference
    d2 = LossDiagnoser("rank", "linear", n_members=3, gap="center").fit(
        planted.X_train, planted.loss_train)
    assert d2.text_mean_ is None
    assert roc_auc_score(planted.region_test, d2.predict(texts_test, space="text")) > 0.9


def test_gap_center_single_phrase_needs_reference(planted, gapped):
    _, texts_test, texts_ref = gapped
    d = LossDiagnoser("rank", "linear", n_members=2, max_epochs=2, gap="center").fit(
        planted.X_train, planted.loss_train)
    with pytest.raises(DataError, match="text_reference"):
        d.predict(texts_test[:1], space="text")
    assert d.compare(texts_test[:1], texts_test[1:2], space="text").p_higher.shape == (1,)
    d.fit(planted.X_train, planted.loss_train, text_reference=texts_ref)
    assert d.predict(texts_test[:1], space="text").shape == (1,)


def test_gap_none_treats_text_like_data(planted, ranker):
    np.testing.assert_array_equal(ranker.predict(planted.X_test[:5], space="text"),
                                  ranker.predict(planted.X_test[:5]))


# ---------------------------------------------------------------- errors
def test_nan_in_X_reports_count_and_rows(planted):
    X = planted.X_train.copy()
    X[[3, 7], 0] = np.nan
    X[11, 5] = np.inf
    with pytest.raises(DataError, match=r"3 rows with NaN or inf \(first rows: 3, 7, 11\)"):
        LossDiagnoser().fit(X, planted.loss_train)


def test_nonfinite_loss_reports_count_and_indices(planted):
    loss = planted.loss_train.copy()
    loss[[2, 4]] = [np.inf, np.nan]
    with pytest.raises(DataError, match=r"2 NaN or inf values \(first indices: 2, 4\)"):
        LossDiagnoser().fit(planted.X_train, loss)


def test_nan_at_predict(ranker, planted):
    X = planted.X_test[:4].copy()
    X[1, 0] = np.nan
    with pytest.raises(DataError, match="first rows: 1"):
        ranker.predict(X)


def test_length_mismatch(planted):
    with pytest.raises(DataError, match="one loss value per row"):
        LossDiagnoser().fit(planted.X_train, planted.loss_train[:-1])


def test_wrong_dim_at_predict(ranker, planted):
    with pytest.raises(DataError, match=f"dimension {DIM + 1} but .* dimension {DIM}"):
        ranker.predict(np.ones((3, DIM + 1), dtype=np.float32))


def test_wrong_dim_text_reference(planted):
    with pytest.raises(DataError, match="same encoder"):
        LossDiagnoser().fit(planted.X_train, planted.loss_train,
                            text_reference=np.ones((3, DIM - 1)))


def test_too_few_samples(planted):
    with pytest.raises(DataError, match="at least 10"):
        LossDiagnoser().fit(planted.X_train[:9], planted.loss_train[:9])


def test_not_2d(planted):
    with pytest.raises(DataError, match="2-D"):
        LossDiagnoser().fit(planted.X_train[0], planted.loss_train)


def test_loss_required_for_rank_and_regress(planted):
    for objective in ("rank", "regress"):
        with pytest.raises(DataError, match="needs the per-sample loss"):
            LossDiagnoser(objective).fit(planted.X_train)


def test_constant_loss(planted):
    with pytest.raises(DataError, match="loss is constant"):
        LossDiagnoser("regress").fit(planted.X_train, np.ones(len(planted.X_train)))


@pytest.mark.parametrize("kwargs, match", [
    ({"objective": "classify"}, "rank, regress, familiarity"),
    ({"arch": "transformer"}, "linear, mlp"),
    ({"gap": "shift"}, "none, center"),
    ({"negatives": "hard"}, "random, moments"),
    ({"n_members": 0}, "n_members must be a positive integer"),
    ({"validation_fraction": 0.9}, "validation_fraction"),
    ({"lr": 0.0}, "lr must be a positive number"),
    ({"pair_group": 1}, "pair_group must be an integer >= 2 or None"),
])
def test_bad_parameters_name_the_choices(planted, kwargs, match):
    with pytest.raises(ValueError, match=match):
        LossDiagnoser(**kwargs).fit(planted.X_train, planted.loss_train)


def test_unknown_space(ranker, planted):
    with pytest.raises(ValueError, match="unknown space 'image': choose one of data, text"):
        ranker.predict(planted.X_test, space="image")


def test_the_former_keyword_modality_still_works_and_says_its_new_name(ranker, planted):
    with pytest.warns(DeprecationWarning, match="now called `space`"):
        old = ranker.predict(planted.X_test[:3], modality="text")
    np.testing.assert_array_equal(old, ranker.predict(planted.X_test[:3], space="text"))


def test_predict_before_fit(planted):
    d = LossDiagnoser()
    for call in (lambda: d.predict(planted.X_test), lambda: d.predict_members(planted.X_test),
                 lambda: d.compare(planted.X_test, planted.X_test), lambda: d.save("x")):
        with pytest.raises(NotFittedError, match="call fit"):
            call()


def test_compare_row_mismatch(ranker, planted):
    with pytest.raises(DataError, match="equally many rows"):
        ranker.compare(planted.X_test[:3], planted.X_test[:4])


def test_other_seed_data_is_still_learned():
    other = make_planted(n=800, seed=1)
    d = LossDiagnoser("rank", "mlp", n_members=3).fit(other.X_train, other.loss_train)
    assert spearmanr(d.predict(other.X_test), other.loss_test)[0] > 0.15
