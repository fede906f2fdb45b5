"""The paper's metrics on inputs whose answer is known, and their refusals of bad input."""

from __future__ import annotations

import numpy as np
import pytest

from llm2loss.errors import DataError
from llm2loss.evaluation import (attribute_disparity, correlations, disparity_agreement,
                                 familiarity_auroc)


def test_correlations_of_monotone_and_reversed():
    x = np.arange(20.0)
    same = correlations(x ** 3, x)
    assert same["spearman"][0] == pytest.approx(1.0) and same["kendall"][0] == pytest.approx(1.0)
    assert 0.8 < same["pearson"][0] < 1.0          # monotone but not linear
    assert all(p < 1e-6 for _, p in same.values())
    rev = correlations(-x, x)
    assert rev["pearson"][0] == pytest.approx(-1.0) and rev["kendall"][0] == pytest.approx(-1.0)


def test_correlations_of_noise_are_not_significant():
    rng = np.random.default_rng(0)
    res = correlations(rng.standard_normal(200), rng.standard_normal(200))
    assert abs(res["spearman"][0]) < 0.2 and res["spearman"][1] > 0.01


def test_familiarity_auroc():
    assert familiarity_auroc([3, 4, 5], [0, 1, 2]) == 1.0
    assert familiarity_auroc([0, 1], [2, 3]) == 0.0
    assert familiarity_auroc([1, 1], [1, 1]) == 0.5


def test_attribute_disparity_signed_and_absolute():
    values = np.array([1.0, 3.0, 0.0, 0.5, 0.5, 1.0])
    mask = np.array([True, True, False, False, False, False])
    d = attribute_disparity(values, mask)
    assert d == {"signed": 1.5, "absolute": 1.5, "mean_attr": 2.0, "mean_not": 0.5,
                 "n_attr": 2, "n_not": 4}
    flipped = attribute_disparity(values, ~mask)
    assert flipped["signed"] == -1.5 and flipped["absolute"] == 1.5
    assert attribute_disparity(values, mask.astype(int))["signed"] == 1.5


def test_disparity_agreement():
    true = np.array([0.5, -0.2, 0.1, -0.4, 0.3])
    res = disparity_agreement(true, true * 2 + 0.5)   # -0.2 becomes +0.1: one sign wrong
    assert res["kendall"][0] == pytest.approx(1.0)
    assert res["sign_accuracy"] == pytest.approx(0.8)
    assert set(res) == {"pearson", "spearman", "kendall", "sign_accuracy"}


@pytest.mark.parametrize("call, match", [
    (lambda: correlations([1, 2, 3], [1, 2]), "pass one value of each"),
    (lambda: correlations([1, 1, 1], [1, 2, 3]), "pred is constant"),
    (lambda: correlations([1.0], [2.0]), "at least 2"),
    (lambda: correlations([1, np.nan, 3], [1, 2, 3]), "1 NaN or inf values"),
    (lambda: correlations(np.ones((2, 2)), [1, 2]), "1-D"),
    (lambda: familiarity_auroc([], [1.0]), "scores_in is empty"),
    (lambda: familiarity_auroc([1.0], []), "scores_out is empty"),
    (lambda: attribute_disparity([1, 2, 3], [True, True, True]), "no items without"),
    (lambda: attribute_disparity([1, 2, 3], [False, False, False]), "no items with the"),
    (lambda: attribute_disparity([1, 2, 3], [True, False]), "one True/False per value"),
    (lambda: attribute_disparity([1, 2, 3], [2, 0, 1]), "boolean"),
    (lambda: disparity_agreement([0.1, 0.2], [0.3, 0.3]), "predicted is constant"),
])
def test_bad_input_is_refused(call, match):
    with pytest.raises(DataError, match=match):
        call()
