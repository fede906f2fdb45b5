"""Audited models that misbehave on purpose, as release entrypoints for the fault tests.

`slow_naive_bayes` is the example spam filter v1 with a pause per batch, so that a worker or
the flow can be killed while a shard is running. `nan_naive_bayes` returns NaN probabilities for
some samples, the way a numerically broken model would.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from llm2loss.example_models.spam import NaiveBayesSpamFilter


class SlowNaiveBayes(NaiveBayesSpamFilter):
    """Spam filter v1 that sleeps `delay_s` seconds before each batch."""

    def __init__(self, *, delay_s: float = 1.0, **params: Any) -> None:
        super().__init__(**params)
        self.delay_s = delay_s

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        time.sleep(self.delay_s)
        return super().predict_proba(texts)


class NanNaiveBayes(NaiveBayesSpamFilter):
    """Spam filter v1 whose probabilities are NaN for every third sample."""

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        proba = super().predict_proba(texts)
        proba[::3] = np.nan
        return proba


def slow_naive_bayes(**params: Any) -> SlowNaiveBayes:
    """Entrypoint: spam filter v1, slowed down."""
    return SlowNaiveBayes(**params)


def nan_naive_bayes(**params: Any) -> NanNaiveBayes:
    """Entrypoint: spam filter v1 with NaN outputs."""
    return NanNaiveBayes(**params)
