"""The image benchmark's zero-shot prompts: each value said of one shape and of two, and scored so.

`image_clip.zero_shot_accuracy` predicts the value of the nearest prompt over all forms of all
values. The encoder here is a fixed table of unit vectors, one per phrase, so which prompt is
nearest is known exactly and the scoring can be checked without training a CLIP.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import image_clip  # noqa: E402
import image_data  # noqa: E402
import image_heads  # noqa: E402


class TableEncoder:
    """Phrase -> a fixed one-hot vector; an "image" is given directly as the phrase it looks like."""

    def __init__(self, phrases: list[str]) -> None:
        self.index = {p: i for i, p in enumerate(dict.fromkeys(phrases))}

    def _vector(self, phrase: str) -> np.ndarray:
        v = np.zeros(len(self.index), dtype=np.float32)
        v[self.index[phrase]] = 1.0
        return v

    def encode_text(self, phrases: list[str]) -> np.ndarray:
        return np.stack([self._vector(p) for p in phrases])

    def encode_inputs(self, images: list[str]) -> np.ndarray:
        return np.stack([self._vector(p) for p in images])


def test_two_of_says_a_phrase_of_two_shapes() -> None:
    assert image_data.two_of("a red shape") == "two red shapes"
    assert image_data.two_of("an outlined shape") == "two outlined shapes"
    assert image_data.two_of("a shape on a dark background") == "two shapes on a dark background"
    assert image_data.two_of("a circle") == "two circles"
    with pytest.raises(ValueError, match="does not start with 'a' or 'an'"):
        image_data.two_of("two shapes")
    with pytest.raises(ValueError, match="names no shape"):
        image_data.two_of("a dog")
    assert image_data.two_of("a circle shape") == "two circles shape"  # whole words, the first noun


def test_every_value_is_said_of_one_shape_and_of_two_except_the_count() -> None:
    for name, values in image_data.ZERO_SHOT_PROMPTS.items():
        assert len(values) == (len(image_data.SHAPES) if name == "shape" else 2)
        for forms, singular in zip(values, image_data.SINGULAR_PROMPTS[name]):
            assert singular == forms[:1]
            if name == "two":
                assert len(forms) == 1
            else:
                assert len(forms) == 2 and forms[1].startswith("a photo of two ")


def test_a_scene_nearest_the_two_shape_prompt_of_its_value_counts_as_right() -> None:
    prompts = [p for values in image_data.ZERO_SHOT_PROMPTS.values() for forms in values for p in forms]
    encoder = TableEncoder(prompts)
    # two squares, outlined: each image looks exactly like its two-shape prompt
    attributes = pd.DataFrame({"shape": ["square", "triangle"], "outlined": [True, False],
                               **{a: [False, False] for a in image_data.BOOL_ATTRIBUTES if a != "outlined"}})
    for column, images in (("shape", ["a photo of two squares", "a photo of two triangles"]),
                           ("outlined", ["a photo of two outlined shapes", "a photo of two solid shapes"])):
        both = image_clip.zero_shot_accuracy(encoder, images, attributes,
                                             prompts={column: image_data.ZERO_SHOT_PROMPTS[column]})
        assert both[column] == 1.0
        wrong_value = images[::-1]  # the other value's two-shape prompt: wrong every time
        assert image_clip.zero_shot_accuracy(encoder, wrong_value, attributes,
                                             prompts={column: image_data.ZERO_SHOT_PROMPTS[column]})[column] == 0.0


def test_phrase_gaps_are_each_attribute_minus_its_negation() -> None:
    """A diagnoser fitted on a loss planted along one direction per attribute: the gap of every
    attribute whose direction raises the loss is positive, of every one that lowers it negative."""
    from llm2loss.diagnoser import LossDiagnoser

    rng = np.random.default_rng(0)
    dim, n = 16, 600
    X = rng.normal(size=(n, dim)).astype(np.float32)
    effect = np.array([1.0, -1.0, 0.5, -0.5, 1.5, -1.5])  # one per attribute, on axes 0-5
    loss = X[:, :6] @ effect + 0.1 * rng.normal(size=n)
    d = LossDiagnoser("rank", "linear", n_members=2, random_state=0).fit(X, loss)
    axes = np.eye(dim, dtype=np.float32)[:6]
    pairs = np.stack([v for a in axes for v in (a, -a)])  # (attr, not attr) interleaved
    gaps = image_heads.phrase_gaps(d, pairs)
    assert np.array_equal(np.sign(gaps), np.sign(effect))
