"""Phrase queries on a diagnoser with a planted high-loss concept.

"Phrases" here are the concept centres (what a text encoder would give for the concept's name)
plus random directions (phrases about things the data never shows).
"""

from __future__ import annotations

import numpy as np
import pytest

from planted_region import DIM
from llm2loss.errors import DataError
from llm2loss.insights import Discovery, compare_phrases, discover, estimate

NAMES = [f"concept {i}" for i in range(12)]


def _random_phrases(n: int) -> np.ndarray:
    Z = np.random.default_rng(3).standard_normal((n, DIM))
    return (Z / np.linalg.norm(Z, axis=1, keepdims=True)).astype(np.float32)


def test_estimate_table(planted, ranker):
    table = estimate(ranker, planted.centres, NAMES)
    assert list(table.columns) == ["phrase", "mean", "std", "q0", "q1", "q2", "q3", "q4"]
    assert list(table["phrase"]) == NAMES
    assert table["mean"].idxmax() == 0                 # the planted concept
    assert (table["q0"] <= table["q2"]).all() and (table["q2"] <= table["q4"]).all()
    members = ranker.predict_members(planted.centres, space="text")
    np.testing.assert_allclose(table["mean"], members.mean(axis=0))
    np.testing.assert_allclose(table["std"], members.std(axis=0))


def test_compare_phrases_table(planted, ranker):
    a = np.repeat(planted.centres[:1], 3, axis=0)
    table = compare_phrases(ranker, a, planted.centres[1:4], ["concept 0"] * 3, NAMES[1:4])
    assert list(table.columns) == ["phrase_a", "phrase_b", "p_a_worse", "median_diff",
                                   "q0", "q1", "q2", "q3", "q4"]
    assert (table["p_a_worse"] > 0.9).all() and (table["median_diff"] > 0).all()
    np.testing.assert_allclose(table["median_diff"], table["q2"])


def test_discover_finds_planted_concept_and_unfamiliar_phrases(planted, ranker, familiarity):
    vocab = np.concatenate([planted.centres, _random_phrases(6)])
    phrases = NAMES + [f"unseen {i}" for i in range(6)]
    found = discover(ranker, vocab, phrases, 3, familiarity=familiarity)
    assert isinstance(found, Discovery)
    assert found.highest_loss["phrase"].iloc[0] == "concept 0"
    assert len(found.highest_loss) == 3
    assert found.highest_loss["mean"].is_monotonic_decreasing
    assert set(found.least_familiar["phrase"]) <= {f"unseen {i}" for i in range(6)}
    assert found.least_familiar["mean"].is_monotonic_increasing
    as_dict = found.to_dict()
    assert as_dict["highest_loss"][0]["phrase"] == "concept 0"
    assert {"std", "q0", "q4"} <= set(as_dict["highest_loss"][0])


def test_discover_without_familiarity(planted, ranker):
    found = discover(ranker, planted.centres, NAMES, 20)
    assert found.least_familiar is None and len(found.highest_loss) == 12
    assert found.to_dict()["least_familiar"] is None


def test_estimate_length_mismatch(planted, ranker):
    with pytest.raises(DataError, match="12 embeddings but 2 phrases"):
        estimate(ranker, planted.centres, NAMES[:2])


def test_estimate_no_phrases(ranker):
    with pytest.raises(DataError, match="at least one phrase"):
        estimate(ranker, np.zeros((0, DIM)), [])


def test_compare_phrases_unequal_pairs(planted, ranker):
    with pytest.raises(DataError, match="equally many"):
        compare_phrases(ranker, planted.centres[:2], planted.centres[:3], NAMES[:2], NAMES[:3])


def test_discover_bad_top_k(planted, ranker):
    with pytest.raises(ValueError, match="top_k must be a positive integer"):
        discover(ranker, planted.centres, NAMES, 0)
