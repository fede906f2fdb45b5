"""A planted-slice benchmark: templated sentences with known attributes and a black-box loss.

Sentences describe a person (age, gender) with an object in a setting, e.g. "An old woman is
holding a guitar at the beach." Each sample draws the four factors uniformly and independently
and one of the templates. `PlantedModel` is the audited "model": a black box whose per-sample loss
is known to depend on the factors only through additive effects plus noise,

    loss = BASE + sum of the effects of the sample's factor values + LogNormal(NOISE_MU, NOISE_SIGMA)

Per seed, `plant_effects` makes two factor values failure slices (effect +0.6 to +1.0), two
others easy (-0.2 to -0.4), and gives every other value a small effect (N(0, 0.1)). Because the
factors are independent and uniform, the true disparity of a value v of factor F is exactly
e_v - mean of e_u over the other values u of F (`true_disparities`).

Phrases (`phrase_vocabulary`): three paraphrases per factor value plus distractors unrelated to
every factor; the phrases of the two failure slices are the relevant ones for precision@k
(`precision_at_k`), as in dcbench. A method's predicted disparity of v uses the mean score of v's
paraphrases against the other values' (`predicted_disparities`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from llm2loss.errors import DataError

FACTORS: dict[str, tuple[str, ...]] = {
    "age": ("young", "old"),
    "gender": ("man", "woman"),
    "object": ("bicycle", "guitar", "laptop", "umbrella", "camera", "skateboard", "suitcase",
               "basketball"),
    "setting": ("at the beach", "in a kitchen", "on a city street", "in a forest", "in an office",
                "at a train station"),
}
TEMPLATES = (
    "{A_age} {gender} is holding a {object} {setting}.",
    "Photo of {a_age} {gender} with a {object} {setting}.",
    "The {age} {gender} left a {object} {setting}.",
    "There is {a_age} {gender} using a {object} {setting}.",
    "{A_age} {gender} {setting} is looking at a {object}.",
    "Someone saw {a_age} {gender} with a {object} {setting}.",
    "{A_age} {gender} sits {setting} next to a {object}.",
    "{A_age} {gender} carries a {object} {setting}.",
)
VALUE_PHRASES: dict[str, tuple[str, ...]] = {
    "young": ("a young person", "a youthful man or woman", "a person in their twenties"),
    "old": ("an old person", "an elderly man or woman", "a senior citizen"),
    "man": ("a man", "a gentleman", "a male person"),
    "woman": ("a woman", "a lady", "a female person"),
    **{o: (f"someone with a {o}", f"a {o}", f"a person holding a {o}") for o in FACTORS["object"]},
    **{s: (f"someone {s}", f"a scene {s}", f"a photo taken {s}") for s in FACTORS["setting"]},
}
DISTRACTORS = (
    "a cat sleeping on a sofa", "a plate of pasta", "a red sports car", "a stock market report",
    "a mountain covered in snow", "a bowl of fruit", "an airplane in the sky",
    "a computer program", "a rainy day", "a birthday cake", "a soccer match on television",
    "a horse in a field", "a tall building", "a cup of coffee", "a recipe for bread",
)
BASE = 0.8
NOISE_MU, NOISE_SIGMA = -0.5, 1.0
FAILURE_EFFECT = (0.6, 1.0)
EASY_EFFECT = (0.2, 0.4)
N_FAILURE, N_EASY = 2, 2


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def sentence(template: str, age: str, gender: str, obj: str, setting: str) -> str:
    """One templated sentence (articles fitted to the age word)."""
    a_age = f"{_article(age)} {age}"
    return template.format(age=age, a_age=a_age, A_age=a_age.capitalize(), gender=gender,
                           object=obj, setting=setting)


def all_sentences() -> pd.DataFrame:
    """Every distinct sentence (template x factor values) with its factor values."""
    rows = [
        {"text": sentence(t, a, g, o, s), "template": ti, "age": a, "gender": g, "object": o,
         "setting": s}
        for ti, t in enumerate(TEMPLATES) for a in FACTORS["age"] for g in FACTORS["gender"]
        for o in FACTORS["object"] for s in FACTORS["setting"]
    ]
    return pd.DataFrame(rows)


def draw_samples(sentences: pd.DataFrame, n: int, rng: np.random.Generator) -> np.ndarray:
    """Row indices into `sentences` for n samples (factors and template uniform, independent)."""
    if n < 10:
        raise DataError(f"the planted benchmark needs at least 10 samples, got n={n}; use more")
    return rng.integers(0, len(sentences), n)


def all_values() -> list[tuple[str, str]]:
    """(factor, value) of every factor value, in FACTORS order."""
    return [(f, v) for f, values in FACTORS.items() for v in values]


def plant_effects(rng: np.random.Generator) -> tuple[dict[str, float], list[str]]:
    """(effect per factor value, the failure-slice values) for one seed."""
    values = [v for _, v in all_values()]
    effects = {v: float(rng.normal(0.0, 0.1)) for v in values}
    chosen = rng.choice(len(values), N_FAILURE + N_EASY, replace=False)
    failures = [values[i] for i in chosen[:N_FAILURE]]
    for v in failures:
        effects[v] = float(rng.uniform(*FAILURE_EFFECT))
    for i in chosen[N_FAILURE:]:
        effects[values[i]] = float(-rng.uniform(*EASY_EFFECT))
    return effects, failures


@dataclass
class PlantedModel:
    """The black-box audited model: its loss on a sample depends on the factors plus noise."""

    effects: dict[str, float]

    def losses(self, factors: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
        """Per-sample loss for rows with columns age, gender, object, setting."""
        signal = BASE + sum(factors[f].map(self.effects).to_numpy(dtype=float) for f in FACTORS)
        noise = rng.lognormal(NOISE_MU, NOISE_SIGMA, len(factors))
        return np.maximum(signal, 0.05) + noise


def attribute_values() -> list[tuple[str, str]]:
    """The attributes compared: one value of each two-valued factor, every value otherwise."""
    return [(f, v) for f, v in all_values() if len(FACTORS[f]) > 2 or v == FACTORS[f][1]]


def true_disparities(effects: dict[str, float]) -> np.ndarray:
    """Exact E[loss | v] - E[loss | not v] per attribute value (independent uniform factors)."""
    out = []
    for factor, value in attribute_values():
        others = [effects[u] for u in FACTORS[factor] if u != value]
        out.append(effects[value] - float(np.mean(others)))
    return np.array(out)


def phrase_vocabulary() -> tuple[list[str], list[str | None]]:
    """(phrases, the factor value each describes or None for distractors)."""
    phrases, owners = [], []
    for _, value in all_values():
        for phrase in VALUE_PHRASES[value]:
            phrases.append(phrase)
            owners.append(value)
    phrases += list(DISTRACTORS)
    owners += [None] * len(DISTRACTORS)
    return phrases, owners


def predicted_disparities(phrase_scores: np.ndarray, owners: list[str | None]) -> np.ndarray:
    """Per attribute value: mean score of its phrases minus the mean over its factor's others."""
    scores = np.asarray(phrase_scores, dtype=float)
    owner = np.array([o if o is not None else "" for o in owners])
    value_score = {v: float(scores[owner == v].mean()) for _, v in all_values()}
    return np.array([value_score[v] - np.mean([value_score[u] for u in FACTORS[f] if u != v])
                     for f, v in attribute_values()])


def precision_at_k(phrase_scores: np.ndarray, owners: list[str | None], failures: list[str],
                   k: int) -> float:
    """Fraction of the k highest-scoring phrases that describe a planted failure slice."""
    if not 1 <= k <= len(owners):
        raise ValueError(f"k must be in 1..{len(owners)}, got {k}")
    top = np.argsort(-np.asarray(phrase_scores, dtype=float), kind="stable")[:k]
    return float(np.mean([owners[i] in failures for i in top]))
