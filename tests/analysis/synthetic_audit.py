"""A small synthetic audit whose answers are known, for the analysis and report tests.

`ConceptEncoder` is a real (deterministic, dependency-free) text encoder: every in-domain concept
phrase has its own random unit direction; samples of a concept are noisy copies of it; an
attribute's "attr" phrase points at the mean of the concepts that have the attribute and its
"not attr" phrase at the mean of those that do not; every other phrase (out-of-domain) gets a
direction of its own, unrelated to the data. Losses are planted: the concepts in FAILING lose a
lot, the others little, so the right answers are known.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from llm2loss.analysis import AnalysisResult, analyse
from llm2loss.config import AuditSettings, DiagnoserSettings

DIM = 32
CONCEPTS = [
    "an email offering a mortgage refinance",
    "an email claiming you won a lottery prize",
    "an email advertising cheap prescription drugs",
    "a mailing list discussion about Linux",
    "a bug report for an open source project",
    "a personal email between friends",
    "an email from a colleague about a meeting",
    "a technology news digest",
]
FAILING = {"an email offering a mortgage refinance", "an email claiming you won a lottery prize"}
#: attribute -> concepts that have it. "Money" covers the failing concepts (a true disparity).
ATTRIBUTE_MEMBERS = {
    "Money": {CONCEPTS[0], CONCEPTS[1], CONCEPTS[2]},
    "Work": {CONCEPTS[4], CONCEPTS[6]},
    "Tech": {CONCEPTS[3], CONCEPTS[4], CONCEPTS[7]},
    "Friendly": {CONCEPTS[5], CONCEPTS[6]},
}
ATTRIBUTE_PHRASES = {name: (f"an email about {name.lower()}", f"an email not about {name.lower()}")
                     for name in ATTRIBUTE_MEMBERS}
XSS = "<script>alert(1)</script>"
OOD = ["a recipe for vegetable soup", "the final score of a football match", "a haiku about rain",
       "a doctor's note about blood pressure", "a knitting pattern for a scarf",
       "a chess opening analysis"]


@dataclass
class RenderedReport:
    """A rendered report of the synthetic audit (the report tests' session fixture)."""

    metrics: dict[str, Any]
    regression: dict[str, Any]
    out_dir: Path
    files: list[Path]


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _direction(text: str) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    return _unit(np.random.default_rng(seed).standard_normal(DIM))


class ConceptEncoder:
    """Deterministic text encoder of the synthetic world (see the module doc)."""

    name = "concept-encoder"
    dim = DIM
    fingerprint = "concept-encoder-v1"
    modality = "text"

    def _vector(self, text: str) -> np.ndarray:
        for name, (yes, no) in ATTRIBUTE_PHRASES.items():
            if text in (yes, no):
                members = ATTRIBUTE_MEMBERS[name]
                chosen = [c for c in CONCEPTS if (c in members) == (text == yes)]
                return _unit(np.mean([_direction(c) for c in chosen], axis=0))
        return _direction(text)

    def encode_text(self, texts: list[str]) -> np.ndarray:
        return np.stack([self._vector(t) for t in texts]).astype(np.float32)

    def encode_inputs(self, batch: list[str]) -> np.ndarray:
        return self.encode_text(batch)


def make_data(n: int = 500, seed: int = 0) -> dict[str, object]:
    """Samples of the concepts with planted losses, correctness and attributes, split 70/30."""
    rng = np.random.default_rng(seed)
    concept = rng.integers(0, len(CONCEPTS), size=n)
    names = [CONCEPTS[i] for i in concept]
    X = _unit(np.stack([_direction(c) for c in names]) + 0.35 * rng.standard_normal((n, DIM)) / np.sqrt(DIM))
    failing = np.array([c in FAILING for c in names])
    loss = rng.exponential(0.2, size=n) + np.where(failing, 2.0, 0.0)
    correct = rng.random(n) > np.where(failing, 0.6, 0.05)
    attributes = pd.DataFrame({a: [c in m for c in names] for a, m in ATTRIBUTE_MEMBERS.items()})
    attributes["Unpaired"] = rng.random(n) > 0.5
    cut = int(0.7 * n)
    return {"X_train": X[:cut], "loss_train": loss[:cut], "X_test": X[cut:], "loss_test": loss[cut:],
            "correct_test": correct[cut:], "attributes_test": attributes.iloc[cut:].reset_index(drop=True)}


def settings(n_members: int = 3) -> AuditSettings:
    """Audit settings: every objective x arch, a user phrase with HTML in it, two pairs."""
    return AuditSettings(
        diagnosers=DiagnoserSettings(n_members=n_members),
        phrases=[XSS],
        pairs=[(CONCEPTS[0], CONCEPTS[5]), (CONCEPTS[1], XSS)],
    )


def run_analysis(**overrides: object) -> AnalysisResult:
    """The synthetic audit through the real `analyse`."""
    kwargs: dict[str, object] = {
        **make_data(), "text_encoder": ConceptEncoder(), "settings": settings(),
        "vocabularies": {"my_topics": CONCEPTS, "text_ood": OOD},
        "attribute_phrases": ATTRIBUTE_PHRASES, "modality": "text",
    }
    kwargs.update(overrides)
    return analyse(**kwargs)  # type: ignore[arg-type]
