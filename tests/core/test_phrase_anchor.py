"""LossDiagnoser's experimental `phrase_anchor`: the heads also learn the linear ensemble's ordering
of the reference phrases; fitting with it warns, it needs a text reference, refuses bad weights,
and is saved with the model. It is not an audit setting."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.filterwarnings("ignore:phrase_anchor is experimental:UserWarning")
from scipy.stats import spearmanr

from llm2loss import LossDiagnoser
from llm2loss.errors import DataError

DIM = 12


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows whose loss bends (a square and a product), and phrases far off the rows' spread."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(800, DIM)).astype(np.float32)
    X[:, 4:] *= 0.05  # the rows vary along 4 directions; phrases also point along the other 8
    loss = X[:, 0] ** 2 + X[:, 1] * X[:, 2] + 0.5 * X[:, 3] + 0.05 * rng.normal(size=800)
    phrases = rng.normal(size=(40, DIM)).astype(np.float32)
    return X, loss, phrases


def _agreement_with_linear(anchor: float, objective: str = "rank", gap: str = "none") -> float:
    X, loss, phrases = _data()
    kwargs = {"n_members": 3, "random_state": 0, "max_epochs": 80, "gap": gap}
    # the anchor trains the heads at the phrases' points, so the phrases are read by the heads
    mlp = LossDiagnoser(objective, "mlp", phrase_anchor=anchor, text_readout="heads",
                        **kwargs).fit(X, loss, text_reference=phrases)
    linear = LossDiagnoser(objective, "linear", **kwargs).fit(X, loss, text_reference=phrases)
    return float(spearmanr(mlp.predict(phrases, space="text"), linear.predict(phrases, space="text"))[0])


@pytest.mark.parametrize(("objective", "gap"), [("rank", "none"), ("rank", "center"), ("regress", "center")])
def test_anchored_heads_order_the_phrases_like_the_linear_ensemble(objective: str, gap: str) -> None:
    # with gap="center" the anchored rows must be the phrases as text queries see them (centred on
    # the phrases' mean): anchoring other rows would leave the queried ordering unanchored
    free = _agreement_with_linear(0.0, objective, gap)
    anchored = _agreement_with_linear(5.0, objective, gap)
    assert anchored > 0.9 and anchored > free + 0.1, (free, anchored)


def test_anchor_keeps_fitting_the_rows() -> None:
    X, loss, phrases = _data()
    d = LossDiagnoser("rank", "mlp", n_members=3, random_state=0, max_epochs=80,
                      phrase_anchor=5.0).fit(X[:600], loss[:600], text_reference=phrases)
    assert spearmanr(d.predict(X[600:]), loss[600:])[0] > 0.5


def test_anchor_needs_the_phrases() -> None:
    X, loss, phrases = _data()
    for reference in (None, phrases[:1]):  # one phrase has no order to keep
        with pytest.raises(DataError, match="phrase_anchor > 0 needs at least 2 phrases"):
            LossDiagnoser(n_members=2, phrase_anchor=1.0, max_epochs=2).fit(X, loss, text_reference=reference)


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), "1", True])
def test_bad_anchor_weights_are_refused(bad) -> None:
    X, loss, phrases = _data()
    with pytest.raises(ValueError, match="phrase_anchor must be a finite number >= 0"):
        LossDiagnoser(n_members=2, phrase_anchor=bad).fit(X, loss, text_reference=phrases)


def test_familiarity_and_linear_heads_refuse_an_anchor() -> None:
    X, loss, phrases = _data()
    with pytest.raises(ValueError, match="not familiarity-mlp"):
        LossDiagnoser("familiarity", n_members=2, phrase_anchor=1.0).fit(X, text_reference=phrases)
    with pytest.raises(ValueError, match="not rank-linear .a linear head is its own anchor"):
        LossDiagnoser("rank", "linear", n_members=2, phrase_anchor=1.0).fit(X, loss, text_reference=phrases)


def test_anchor_is_saved_and_loaded(tmp_path) -> None:
    X, loss, phrases = _data()
    d = LossDiagnoser(n_members=2, max_epochs=3, phrase_anchor=np.float32(0.5)).fit(X, loss, text_reference=phrases)
    loaded = LossDiagnoser.load(d.save(tmp_path / "anchored"))
    assert loaded.phrase_anchor == 0.5 and type(d.phrase_anchor) is float
    np.testing.assert_allclose(loaded.predict(phrases, space="text"), d.predict(phrases, space="text"),
                               rtol=1e-5, atol=1e-5)


def test_anchored_rows_are_the_phrases_as_text_queries_see_them() -> None:
    from llm2loss.diagnoser.rows import centre_in_place, normalise

    X, loss, phrases = _data()
    d = LossDiagnoser("rank", "mlp", n_members=2, max_epochs=2, gap="center", phrase_anchor=1.0,
                      text_readout="heads")
    d.fit(X, loss, text_reference=phrases)
    rows, targets, weight = d._phrase_anchor(X, loss, phrases)
    np.testing.assert_allclose(rows, centre_in_place(normalise(phrases), d.text_mean_), atol=1e-6)
    assert targets.shape == (len(phrases),) and weight == 1.0


def test_fitting_with_an_anchor_warns_that_it_is_experimental() -> None:
    X, loss, phrases = _data()
    with pytest.warns(UserWarning, match="phrase_anchor is experimental"):
        LossDiagnoser(n_members=2, max_epochs=2, phrase_anchor=1.0).fit(X, loss, text_reference=phrases)


def test_audit_settings_do_not_offer_the_anchor() -> None:
    from llm2loss.config import DiagnoserSettings

    with pytest.raises(ValueError, match="phrase_anchor"):
        DiagnoserSettings(phrase_anchor=1.0)


@pytest.mark.parametrize("text_readout", ["auto", "linear"])
def test_an_anchor_with_a_linear_readout_is_refused(text_readout: str) -> None:
    # the linear readout is fitted to the heads on the data, not at the anchored phrases: the
    # anchor would train something no phrase query reads
    X, loss, phrases = _data()
    with pytest.raises(ValueError, match="set text_readout='heads' to use phrase_anchor"):
        LossDiagnoser(n_members=2, max_epochs=2, gap="center", phrase_anchor=1.0,
                      text_readout=text_readout).fit(X, loss, text_reference=phrases)
