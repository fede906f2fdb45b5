"""The image benchmark's embedding transforms for the head variants (`benchmarks/image_heads.py`).

`top directions` keeps the fewest principal directions of the centred training images that hold
`SUBSPACE_SHARE` of their variance and partly whitens them; phrases are mapped the same way, so
their component along directions in which no image varies is dropped. Checked on planted data
whose image subspace is known exactly.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import image_heads  # noqa: E402


def test_kept_directions_is_the_fewest_holding_the_share() -> None:
    eigval = np.array([0.01, 5.0, 3.0, 1.99, 0.0])  # any order; total 10
    assert image_heads.kept_directions(eigval, 0.5) == 1
    assert image_heads.kept_directions(eigval, 0.8) == 2
    assert image_heads.kept_directions(eigval, 0.99) == 3
    assert image_heads.kept_directions(eigval, 0.9995) == 4
    assert image_heads.kept_directions(eigval, 1.0) == 4  # the zero direction holds nothing
    with pytest.raises(ValueError, match="share must be in"):
        image_heads.kept_directions(eigval, 0.0)
    with pytest.raises(ValueError, match="do not vary"):
        image_heads.kept_directions(np.zeros(3), 0.9)


def _planted(rng: np.random.Generator, n: int = 400, dim: int = 12, rank: int = 3) -> np.ndarray:
    """Images that vary only along the first `rank` axes around a common direction (the last
    axis); made unit length, they also vary a little along that last axis."""
    X = np.zeros((n, dim))
    X[:, dim - 1] = 5.0  # the shared direction every image has (removed by centring)
    X[:, :rank] = rng.normal(size=(n, rank)) * np.array([3.0, 2.0, 1.0])[:rank]
    return X


def test_top_directions_drop_what_no_image_varies_along() -> None:
    rng = np.random.default_rng(0)
    X = _planted(rng)
    train = np.ones(len(X), dtype=bool)
    dim = X.shape[1]
    inside, outside = np.eye(dim)[0], np.eye(dim)[5]  # a phrase along a varying axis, one off it
    phrases = np.stack([inside + outside, inside - outside])
    reference = np.concatenate([phrases, rng.normal(size=(20, dim))])
    images, mapped, ref, k = image_heads._whitened(X, train, phrases, reference,
                                                    share=image_heads.SUBSPACE_SHARE)
    assert k == 4  # axes 0-2 and the last one
    assert images.shape == X.shape and ref.shape == reference.shape
    # nothing of any row is left outside the four axes the images vary along
    for rows in (images, mapped, ref):
        assert np.abs(rows[:, 3:-1]).max() < 1e-5
    # the two phrases differ only off the image subspace, so they map to the same direction (the
    # diagnoser scores unit rows)
    unit = image_heads._unit(mapped)
    assert np.allclose(unit[0], unit[1], atol=1e-5)
    # without `share` every direction is kept, and the off-subspace difference survives
    *_, full = image_heads._whitened(X, train, phrases, reference)
    assert full == dim
    _, mapped_full, _, _ = image_heads._whitened(X, train, phrases, reference)
    unit_full = image_heads._unit(mapped_full)
    assert np.abs(unit_full[0] - unit_full[1]).max() > 0.1


def test_partial_whitening_evens_the_image_spread_out() -> None:
    """Each kept principal direction is divided by the square root of its std, so the ratio of
    the stds of two directions becomes the square root of what it was."""
    X = _planted(np.random.default_rng(1), n=4000)
    images, *_ = image_heads._whitened(X, np.ones(len(X), dtype=bool), X[:2], X[:4],
                                        share=image_heads.SUBSPACE_SHARE)
    centred = image_heads._unit(image_heads._unit(X) - image_heads._unit(X).mean(axis=0))
    before = np.sort(np.linalg.eigvalsh(np.cov(centred.T)))[::-1][:3] ** 0.5
    after = np.sort(np.linalg.eigvalsh(np.cov(images.T)))[::-1][:3] ** 0.5
    assert np.allclose(after[0] / after[2], np.sqrt(before[0] / before[2]), rtol=0.02)


def test_fit_variant_names_its_transform() -> None:
    with pytest.raises(ValueError, match="unknown transform 'pca'"):
        image_heads.fit_variant({"X": np.zeros((4, 2)), "loss": np.zeros(4), "test": np.zeros(4, bool)},
                                {}, kwargs={}, transform="pca", seed=0)


def test_wrong_signs_counts_each_attribute_over_the_seeds() -> None:
    rows = [{"wrong_signs": ["two", "striped"]}, {"wrong_signs": ["striped"]}, {"wrong_signs": []}]
    assert image_heads.wrong_signs(rows) == "striped 2, two 1"  # in BOOL_ATTRIBUTES order
    assert image_heads.wrong_signs([{"wrong_signs": []}]) == "none"
    assert image_heads.wrong_signs([{"spearman": 0.5}]) == "n/a"  # results saved before the record
