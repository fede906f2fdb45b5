"""Small known models used as release entrypoints by the inputs tests."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class TinyLinear(nn.Module):
    """A linear classifier over 4 numbers; samples are float arrays of length 4."""

    def __init__(self, n_out: int = 3) -> None:
        super().__init__()
        self.linear = nn.Linear(4, n_out)
        self.preprocess = lambda sample: torch.as_tensor(np.asarray(sample, dtype=np.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


def tiny_linear(n_out: int = 3) -> TinyLinear:
    """Entrypoint: an untrained TinyLinear (weights come from the release)."""
    return TinyLinear(n_out)


class ProbaByLength:
    """predict_proba on strings: P(class 1) grows with the text length (no weights)."""

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        p = np.array([min(len(t) / 10.0, 0.99) for t in texts])
        return np.column_stack([1 - p, p])


def proba_by_length() -> ProbaByLength:
    """Entrypoint: a predict_proba model."""
    return ProbaByLength()


def absolute_error(outputs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """A custom per-sample loss: |output - label| on the first output column."""
    return np.abs(outputs[:, 0] - labels)


def not_a_model() -> str:
    """Entrypoint that returns something that is not a model."""
    return "model"
