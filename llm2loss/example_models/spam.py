"""The two example spam filters audited by the demo, and the function that trains their releases.

Both read the text that `llm2loss.sources.spamassassin.email_text` makes (Subject + body) and
hash words with scikit-learn's `HashingVectorizer`, which needs no fitted vocabulary. So a model
is fully described by a few arrays, saved as safetensors (never pickled); the entrypoints
(`naive_bayes`, `logistic_regression`) build an empty model that `load_state_dict` fills.

- v1 `naive_bayes`: multinomial naive Bayes on hashed word counts, trained on PLAIN-TEXT e-mails
  only (the HTML e-mails of its training half were left out), so it should stumble on HTML mail.
- v2 `logistic_regression`: logistic regression on hashed words, word pairs and character
  n-grams, trained on every e-mail of its training half except the hard-ham group, so it should
  stumble on legitimate newsletters and promotions that look like spam.

Training half: the e-mails whose id hashes to `stable_hash(id) % 10 < 5`; the audit runs on all
e-mails, so about half of what is audited was never seen in training.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from safetensors.torch import save_file
from scipy.special import expit, softmax
from sklearn.feature_extraction.text import HashingVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import MultinomialNB

from llm2loss.config import DatasetSpec, ReleaseSpec
from llm2loss.errors import DataError, NotFittedError
from llm2loss.sources.base import Source, stable_hash

MODEL_NAME = "spam-filter"
CLASSES = ["ham", "spam"]
TRAIN_BUCKETS = 5  # of 10: ids with stable_hash(id) % 10 < 5 are the training half
CHAR_PREFIX = 2000  # characters of each e-mail used for character n-grams (long HTML is slow)


def in_training_half(sample_id: str) -> bool:
    """True for ids in the training half (stable_hash(id) % 10 < TRAIN_BUCKETS)."""
    return stable_hash(sample_id) % 10 < TRAIN_BUCKETS


class _HashedTextModel:
    """Shared parts: state as named float32 arrays, strict load_state_dict, fitted check."""

    _keys: tuple[str, ...] = ()

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The fitted arrays as tensors (what gets saved as safetensors)."""
        self._check_fitted()
        return {k: torch.from_numpy(np.ascontiguousarray(getattr(self, f"{k}_"), dtype=np.float32)) for k in self._keys}

    def load_state_dict(self, state: dict[str, torch.Tensor], strict: bool = True) -> None:
        """Fill the model from `state`; RuntimeError naming missing/unexpected keys or shapes."""
        missing = [k for k in self._keys if k not in state]
        unexpected = [k for k in state if k not in self._keys]
        if missing or (strict and unexpected):
            raise RuntimeError(f"missing keys {missing}, unexpected keys {unexpected} for {type(self).__name__}")
        for key in self._keys:
            value = state[key].detach().cpu().numpy().astype(np.float64)
            expected = self._shape(key)
            if value.shape != expected:
                raise RuntimeError(f"size mismatch for {key}: weights have {value.shape}, model expects {expected}")
            setattr(self, f"{key}_", value)

    def _check_fitted(self) -> None:
        if not all(hasattr(self, f"{k}_") for k in self._keys):
            raise NotFittedError(f"{type(self).__name__} is not fitted: call fit or load_state_dict first")

    def _shape(self, key: str) -> tuple[int, ...]:
        raise NotImplementedError


class NaiveBayesSpamFilter(_HashedTextModel):
    """Multinomial naive Bayes on hashed word counts; predict_proba(list[str]) -> (n, 2)."""

    _keys = ("feature_log_prob", "class_log_prior")

    def __init__(self, *, n_features: int = 2**17, alpha: float = 0.1) -> None:
        self.n_features = n_features
        self.alpha = alpha

    def _vectorizer(self) -> HashingVectorizer:
        return HashingVectorizer(n_features=self.n_features, alternate_sign=False, norm=None)

    def _shape(self, key: str) -> tuple[int, ...]:
        return (2, self.n_features) if key == "feature_log_prob" else (2,)

    def fit(self, texts: list[str], labels: np.ndarray) -> "NaiveBayesSpamFilter":
        """Fit on texts with labels 0 (ham) / 1 (spam)."""
        nb = MultinomialNB(alpha=self.alpha).fit(self._vectorizer().transform(texts), labels)
        self.feature_log_prob_ = nb.feature_log_prob_
        self.class_log_prior_ = nb.class_log_prior_
        return self

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """P(ham), P(spam) per text."""
        self._check_fitted()
        counts = self._vectorizer().transform(texts)
        joint = counts @ self.feature_log_prob_.T + self.class_log_prior_
        return softmax(np.asarray(joint), axis=1)


class LogisticSpamFilter(_HashedTextModel):
    """Logistic regression on hashed words, word pairs and character n-grams."""

    _keys = ("coef", "intercept")

    def __init__(self, *, n_features: int = 2**17, C: float = 10.0, random_state: int = 0) -> None:
        self.n_features = n_features
        self.C = C
        self.random_state = random_state

    def _features(self, texts: list[str]) -> sp.csr_matrix:
        words = HashingVectorizer(n_features=self.n_features, ngram_range=(1, 2))
        chars = HashingVectorizer(n_features=self.n_features, analyzer="char_wb", ngram_range=(3, 5))
        return sp.hstack(
            [words.transform(texts), chars.transform([t[:CHAR_PREFIX] for t in texts])], format="csr"
        )

    def _shape(self, key: str) -> tuple[int, ...]:
        return (2 * self.n_features,) if key == "coef" else (1,)

    def fit(self, texts: list[str], labels: np.ndarray) -> "LogisticSpamFilter":
        """Fit on texts with labels 0 (ham) / 1 (spam)."""
        lr = LogisticRegression(C=self.C, max_iter=2000, random_state=self.random_state)
        lr.fit(self._features(texts), labels)
        self.coef_ = lr.coef_[0]
        self.intercept_ = lr.intercept_
        return self

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """P(ham), P(spam) per text."""
        self._check_fitted()
        p_spam = expit(self._features(texts) @ self.coef_ + self.intercept_[0])
        return np.column_stack([1.0 - p_spam, p_spam])


def naive_bayes(**params: Any) -> NaiveBayesSpamFilter:
    """Entrypoint of spam-filter v1 (weights come from the release's safetensors)."""
    return NaiveBayesSpamFilter(**params)


def logistic_regression(**params: Any) -> LogisticSpamFilter:
    """Entrypoint of spam-filter v2 (weights come from the release's safetensors)."""
    return LogisticSpamFilter(**params)


def read_corpus(source: Source, *, shard_size: int = 2000) -> tuple[list[str], list[str], np.ndarray, Any]:
    """ids, texts, labels and attributes of every readable sample of `source`."""
    ids: list[str] = []
    texts: list[str] = []
    labels: list[np.ndarray] = []
    frames = []
    for index in range(source.n_shards(shard_size)):
        shard = source.read_shard(index, shard_size)
        ids += shard.ids
        texts += shard.inputs
        labels.append(shard.labels)
        frames.append(shard.attributes)
    import pandas as pd

    return ids, texts, np.concatenate(labels), pd.concat(frames, ignore_index=True)


def train_spam_releases(
    source: Source, out_dir: Path, *, dataset: DatasetSpec | None = None, seed: int = 0
) -> list[tuple[ReleaseSpec, Path]]:
    """Train spam-filter v1 and v2 on the training half of `source`; save weights to `out_dir`.

    Returns (release spec, safetensors file) per version; the release's dataset is `dataset`
    (default: the source's own spec). Deterministic for a given corpus and seed.
    """
    ids, texts, labels, attrs = read_corpus(source)
    train = np.array([in_training_half(i) for i in ids])
    v1_rows = train & ~attrs["has_html"].to_numpy(dtype=bool)
    v2_rows = train & ~(attrs["from_mailing_list"].to_numpy(dtype=bool) & (labels == 0))
    for name, rows in (("v1", v1_rows), ("v2", v2_rows)):
        if len(set(labels[rows].tolist())) < 2:
            raise DataError(
                f"spam-filter {name} needs ham and spam in its training rows, got {rows.sum()} "
                "sample(s) of one class: use a larger slice of the corpus (a bigger limit)"
            )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = dataset if dataset is not None else source.spec  # type: ignore[attr-defined]
    plans = [
        ("v1", "naive_bayes", NaiveBayesSpamFilter(), v1_rows, datetime(2024, 3, 1, tzinfo=timezone.utc),
         "multinomial naive Bayes on hashed words; trained on plain-text e-mails only"),
        ("v2", "logistic_regression", LogisticSpamFilter(random_state=seed), v2_rows,
         datetime(2024, 9, 1, tzinfo=timezone.utc),
         "logistic regression on hashed words, word pairs and char n-grams; trained without "
         "mailing-list ham"),
    ]
    results = []
    for version, entry, model, rows, created, description in plans:
        model.fit([texts[i] for i in np.flatnonzero(rows)], labels[rows])
        weights = out_dir / f"{MODEL_NAME}-{version}.safetensors"
        save_file(model.state_dict(), str(weights), metadata={"model": MODEL_NAME, "version": version})
        release = ReleaseSpec(
            model=MODEL_NAME, version=version, entrypoint=f"llm2loss.example_models.spam:{entry}",
            weights=str(weights), dataset=spec, task="binary", classes=CLASSES, created_at=created,
            metadata={
                "description": description,
                "training_rows": int(rows.sum()),
                "training_split": f"ids with stable_hash(id) % 10 < {TRAIN_BUCKETS}",
                "held_out_accuracy": _held_out_accuracy(model, texts, labels, ~train),
                "seed": seed,
            },
        )
        results.append((release, weights))
    return results


def _held_out_accuracy(model: Any, texts: list[str], labels: np.ndarray, rows: np.ndarray) -> float | None:
    if not rows.any():
        return None
    proba = model.predict_proba([texts[i] for i in np.flatnonzero(rows)])
    return round(float((proba.argmax(axis=1) == labels[rows]).mean()), 4)
