"""LossDiagnoser's parameters and inputs: integral numbers accepted, bools and complex refused,
losses that do not survive the cast to the training dtype refused, scikit-learn's clone works."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

from llm2loss.config import DiagnoserSettings
from llm2loss.diagnoser import LossDiagnoser
from llm2loss.errors import ConfigError, DataError


def _data(n: int = 40, dim: int = 6):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, dim)).astype(np.float32), rng.random(n)


def test_numpy_integers_are_accepted_and_bools_refused():
    X, loss = _data()
    d = LossDiagnoser(objective="regress", arch="linear", n_members=np.int64(3), max_epochs=np.int32(2)).fit(X, loss)
    assert d.predict_members(X).shape == (3, 40)
    for bad in (True, 2.0, "3"):
        with pytest.raises(ValueError, match="n_members must be a positive integer"):
            LossDiagnoser(n_members=bad).fit(X, loss)


def test_clone_and_set_params_follow_scikit_learn():
    d = LossDiagnoser(objective="regress", arch="linear", n_members=3, random_state=7, pair_group=None)
    twin = clone(d)
    assert twin is not d and twin.get_params(deep=True) == d.get_params(deep=False)
    assert twin.set_params(n_members=4, lr=0.01) is twin and twin.n_members == 4 and twin.lr == 0.01
    with pytest.raises(ValueError, match="unknown parameter.*n_member"):
        twin.set_params(n_member=4)


def test_complex_and_non_numeric_inputs_are_refused():
    X, loss = _data()
    with pytest.raises(DataError, match="complex"):
        LossDiagnoser(n_members=2).fit(X + 1j, loss)
    with pytest.raises(DataError, match="complex"):
        LossDiagnoser(n_members=2).fit(X, loss + 0j)
    with pytest.raises(DataError, match="not numbers"):
        LossDiagnoser(n_members=2).fit(X.astype(str), loss)


def test_losses_that_overflow_or_collapse_in_float32_are_refused():
    X, loss = _data()
    huge = loss.copy()
    huge[3] = 1e300  # finite in float64, inf in float32
    with pytest.raises(DataError, match="overflow float32"):
        LossDiagnoser(objective="rank", n_members=2).fit(X, huge)
    collapsed = 1e10 + loss * 1e-3  # distinct in float64, one value in float32
    assert np.ptp(collapsed) > 0 and np.ptp(collapsed.astype(np.float32)) == 0
    with pytest.raises(DataError, match="equal in float32"):
        LossDiagnoser(objective="rank", n_members=2).fit(X, collapsed)
    # regress learns slog(loss), standardised in float64 before the cast: the same losses train.
    for ok in (huge, collapsed):
        d = LossDiagnoser(objective="regress", arch="linear", n_members=2, max_epochs=1).fit(X, ok)
        assert np.isfinite(d.predict(X)).all()


def test_save_onto_a_file_is_one_clear_error(tmp_path):
    X, loss = _data()
    d = LossDiagnoser(objective="regress", arch="linear", n_members=2, max_epochs=1).fit(X, loss)
    (tmp_path / "taken").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        d.save(tmp_path / "taken")
    with pytest.raises(ConfigError, match="is a file"):
        d.save(tmp_path / "taken" / "below")


def test_audit_settings_need_two_members_to_show_uncertainty():
    with pytest.raises(ValueError, match="n_members >= 2"):
        DiagnoserSettings(n_members=1)
    assert DiagnoserSettings(n_members=2).n_members == 2
    LossDiagnoser(n_members=1)  # the library itself still allows one member
