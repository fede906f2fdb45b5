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


def test_spearman_gain_is_paired_and_its_interval_covers_what_noise_allows() -> None:
    rng = np.random.default_rng(0)
    truth = rng.normal(size=600)
    good = truth + 0.3 * rng.normal(size=600)
    worse = truth + 1.0 * rng.normal(size=600)
    gain, low, high = image_heads.spearman_gain(good, worse, truth)
    assert low > 0 and low < gain < high  # clearly better: the whole interval is above 0
    same = image_heads.spearman_gain(good, good, truth)
    assert same == (0.0, 0.0, 0.0)  # paired: the same predictions gain exactly nothing on any resample
    a, b = (truth + 0.5 * rng.normal(size=600) for _ in range(2))  # equally good, independent errors
    _, low, high = image_heads.spearman_gain(a, b, truth)
    assert low < 0 < high
    assert image_heads.gain_cell({"gain": (0.0081, -0.0031, 0.019)}) == "+0.008 (-0.003 to +0.019)"
    assert image_heads.gain_cell({}) == "n/a"
    with pytest.raises(ValueError, match="same length"):
        image_heads.spearman_gain(good, worse[:10], truth)


def _fit(spearman: float, kendall: float, sign: float) -> dict:
    return {"spearman": spearman, "kendall": kendall, "sign_accuracy": sign,
            "wrong_signs": [] if sign == 1.0 else ["striped"]}


def test_transfer_lines_say_what_carried_to_the_second_audit_set() -> None:
    subspace = next(v for v, (_, t) in image_heads.VARIANTS.items() if t == "subspace")
    default, longer = next(iter(image_heads.VARIANTS)), "heads readout, up to 300 epochs"
    first = {default: [_fit(0.80, 0.73, 1.0)] * 2,
             subspace: [_fit(0.84, 0.60, 1.0), _fit(0.84, 0.73, 1.0)],
             longer: [_fit(0.84, 0.33, 0.67)] * 2}
    second = {default: [_fit(0.78, 0.87, 1.0)] * 2,
              subspace: [_fit(0.82, 0.60, 1.0), _fit(0.82, 0.47, 0.83)],
              longer: [_fit(0.82, 0.73, 0.83)] * 2}
    lines = image_heads.transfer_lines(first, second, baselines=(0.834, 0.799))
    text = "\n".join(lines)
    assert "met all three head targets on 2 of 2 seeds" in text and "on the second set on 1 of 2" in text
    assert "on 2 of those 3 seeds the Kendall target is met at exactly 0.60" in text
    assert "wrong signs: striped 1" in text
    assert "interval above 0" not in text  # no gains recorded, no claim about them
    assert lines[-1] == (f"Variants above the best baseline on every seed of both audit sets (first and "
                         f"second): `{subspace}`, "
                         f"`{longer}`; of those, meeting all three head targets on every seed of both: "
                         "none. No setting meets them on both sets.")
    second[subspace] = [_fit(0.82, 0.47, 1.0)] * 2  # every sign right, but Kendall under its target
    assert "No setting meets them" in image_heads.transfer_lines(first, second, baselines=(0.834, 0.799))[-1]
    second[subspace] = [_fit(0.82, 0.6 - 1e-12, 1.0)] * 2  # 9/15 as kendalltau may round it: met
    assert image_heads.transfer_lines(first, second, baselines=(0.834, 0.799))[-1].endswith(
        f"both: `{subspace}`: the default is not among them.")
    both = {**first, default: [_fit(0.84, 0.73, 1.0)] * 2}, {**second, default: [_fit(0.81, 0.87, 1.0)] * 2}
    assert image_heads.transfer_lines(*both, baselines=(0.834, 0.799))[-1].endswith(
        f"`{default}`, `{subspace}`. So the default meets them on both sets (Spearman by its point "
        "estimate: the intervals are below).")
    # (gain, low, high) per variant in dict order: default, top directions, heads readout up to 300
    intervals = {id(first): [(-0.03, -0.05, -0.01), (0.02, 0.004, 0.03), (0.006, -0.004, 0.016)],
                 id(second): [(-0.02, -0.04, 0.001), (0.02, 0.005, 0.035), (0.021, 0.001, 0.04)]}
    for results in (first, second):
        for v, g in zip(results, intervals[id(results)]):
            results[v] = [{**r, "gain": g} for r in results[v]]
    last = image_heads.transfer_lines(first, second, baselines=(0.834, 0.799))[-1]
    assert f"first audit set `{subspace}`; second `{subspace}`, `{longer}`." in last
    third = image_heads.transfer_lines(first, second, baselines=(0.834, 0.799), label="third")
    assert "on the third set on 2 of 2" in third[0] and "(first and third)" in third[-3]
    assert f"first audit set `{subspace}`; third `{subspace}`, `{longer}`." in third[-1]
    assert "half-widths are 0.010-0.021" in last


def test_later_audit_seeds_may_not_be_the_first_or_repeat() -> None:
    import bench_image

    bench_image.check_later_seeds(3, [11, 23])
    bench_image.check_later_seeds(3, [])  # none
    with pytest.raises(SystemExit, match="first audit set's own seed"):
        bench_image.check_later_seeds(3, [11, 3])
    with pytest.raises(SystemExit, match="names a seed twice"):
        bench_image.check_later_seeds(3, [11, 11])
    with pytest.raises(SystemExit, match="at most 5 seeds"):
        bench_image.check_later_seeds(3, list(range(10, 16)))


def test_fit_variant_names_the_attributes_whose_sign_it_got_wrong() -> None:
    """A loss planted along one axis per attribute, phrases on those axes: with the phrase pair of
    one attribute swapped, exactly that attribute comes out with the wrong sign."""
    import image_data
    import pandas as pd

    rng = np.random.default_rng(0)
    n, dim = 800, 16
    attrs = pd.DataFrame({a: rng.random(n) < 0.5 for a in image_data.BOOL_ATTRIBUTES})
    effect = np.array([1.0, -1.0, 0.8, -0.8, 1.2, -1.2])
    signs = np.where(attrs.to_numpy(), 1.0, -1.0)
    X = np.concatenate([signs + 0.3 * rng.normal(size=(n, 6)), 0.3 * rng.normal(size=(n, dim - 6))], axis=1)
    data = {"X": X.astype(np.float32), "loss": signs @ effect + 0.2 * rng.normal(size=n),
            "test": rng.random(n) < 0.3, "attributes": attrs}
    axes = np.eye(dim, dtype=np.float32)
    phrases = {p: (axes[i] if j == 0 else -axes[i])
               for i, a in enumerate(image_data.BOOL_ATTRIBUTES)
               for j, p in enumerate(image_data.ATTRIBUTE_PHRASES[a])}
    right = image_heads.fit_variant(data, phrases, kwargs={}, transform=None, seed=0, members=2)
    assert right["wrong_signs"] == [] and right["sign_accuracy"] == 1.0
    yes, no = image_data.ATTRIBUTE_PHRASES["two"]
    phrases[yes], phrases[no] = phrases[no], phrases[yes]
    swapped = image_heads.fit_variant(data, phrases, kwargs={}, transform=None, seed=0, members=2)
    assert swapped["wrong_signs"] == ["two"] and swapped["sign_accuracy"] == pytest.approx(5 / 6)
