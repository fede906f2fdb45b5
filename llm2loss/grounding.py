"""Grounding: what the held-out samples a phrase describes measured, next to what was predicted.

A phrase estimate is a prediction of the diagnosers. The audit also holds the truth for the
samples a phrase describes: their measured loss (and error). A `Reference` is that truth: the
held-out embeddings with their measured loss, optional 0/1 error, ids and previews.

Retrieval. A single phrase retrieves the `k` held-out samples most similar to it (cosine in the
encoder's space). A pair (a, b) retrieves contrastively: every held-out sample gets the margin
cos(x, a) - cos(x, b), the `k` with the highest margin describe a and the `k` with the lowest
describe b. The question "is a worse than b" is about samples that look more like a than like b,
and two phrases' independent neighbourhoods often overlap (short phrases sit close together
against whole documents), so the margin is the retrieval the comparison needs. `k` is a fixed
share of the held-out samples (`RETRIEVE_FRACTION`, clipped to [`RETRIEVE_MIN`, `RETRIEVE_MAX`] and
to half of the held-out samples).

Measured values come with a bootstrap `INTERVAL` interval (percentile bootstrap over the retrieved
samples, `N_BOOT` resamples, fixed seed: the same question always gets the same answer).

Validity. With attribute labels, `separation_auroc` is the paper's Table 5 "0-shot AUROC": how well
cos(x, a) - cos(x, b) tells samples with the attribute from those without (0.5 = the encoder
cannot tell them apart, so no phrase estimate about them can be trusted).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from llm2loss.errors import DataError

RETRIEVE_FRACTION = 0.05
RETRIEVE_MIN = 20
RETRIEVE_MAX = 200
MIN_SAMPLES = 6
N_BOOT = 1000
INTERVAL = 0.90
N_EXAMPLES = 5
SEED = 0


@dataclass(frozen=True)
class Example:
    """One held-out sample shown behind a finding: its id, a preview, its measured loss.

    preview: a plain-text snippet (untrusted: renderers escape it) or, for images, a
    `data:image/png;base64,...` thumbnail; "" when the audit has no preview of the sample.
    side: "a" or "b" for the two phrases of a pair, None for a single phrase.
    """

    id: str
    preview: str
    loss: float
    side: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"id": self.id, "preview": self.preview, "loss": self.loss, "side": self.side}


@dataclass(frozen=True)
class Measured:
    """Measured mean loss (and error rate) of retrieved samples, with a bootstrap interval.

    percentile: where the mean measured loss sits among the held-out samples' losses (0-100).
    """

    mean: float
    low: float
    high: float
    n: int
    error: float | None
    percentile: float


@dataclass(frozen=True)
class MeasuredGap:
    """Measured mean loss of set a minus set b, with a bootstrap interval."""

    diff: float
    low: float
    high: float
    n_a: int
    n_b: int

    @property
    def significant(self) -> bool:
        """True when the interval excludes zero."""
        return bool(self.low > 0.0 or self.high < 0.0)


def _unit_rows(X: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.maximum(norms, 1e-12)


class Reference:
    """Held-out samples with their measured loss: the ground truth phrases are checked against.

    X: (n, d) embeddings of held-out samples; loss: (n,) their measured loss; error: optional (n,)
    0/1 error; ids: optional sample ids (default "0", "1", ...); previews: optional per-sample
    preview strings (see `Example`). data_mean / text_mean: when given (gap="center" audits), data
    rows are centred with data_mean and phrase rows with text_mean before the cosines, as the
    diagnosers do.
    """

    def __init__(self, X: Any, loss: Any, *, error: Any = None, ids: Sequence[str] | None = None,
                 previews: Sequence[str] | None = None, data_mean: Any = None,
                 text_mean: Any = None) -> None:
        X = np.asarray(X, dtype=np.float32)
        loss = np.asarray(loss, dtype=np.float64)
        if X.ndim != 2 or len(X) < MIN_SAMPLES:
            raise DataError(f"a Reference needs a 2-D matrix of at least {MIN_SAMPLES} held-out "
                            f"samples, got shape {X.shape}; use more held-out data")
        n = len(X)
        if loss.shape != (n,) or not np.isfinite(loss).all():
            raise DataError(f"a Reference needs one finite loss per row of X ({n}), got shape "
                            f"{loss.shape}; pass the measured held-out losses in X's order")
        if not np.isfinite(X).all():
            raise DataError("the Reference embeddings hold NaN or infinite values; recompute them")
        self.error = None if error is None else np.asarray(error, dtype=np.float64)
        if self.error is not None and self.error.shape != (n,):
            raise DataError(f"error has shape {self.error.shape} but X has {n} rows; pass one 0/1 "
                            "error per held-out sample, or None")
        self.ids = [str(i) for i in ids] if ids is not None else [str(i) for i in range(n)]
        self.previews = [str(p) for p in previews] if previews is not None else None
        for name, values in (("ids", self.ids), ("previews", self.previews)):
            if values is not None and len(values) != n:
                raise DataError(f"{name} has {len(values)} entries but X has {n} rows; pass one "
                                "per held-out sample, in X's order")
        self.data_mean = None if data_mean is None else np.asarray(data_mean, dtype=np.float32)
        self.text_mean = None if text_mean is None else np.asarray(text_mean, dtype=np.float32)
        self.Z = _unit_rows(X - self.data_mean if self.data_mean is not None else X)
        self.loss = loss
        self.k = int(np.clip(round(RETRIEVE_FRACTION * n), min(RETRIEVE_MIN, n // 2),
                             min(RETRIEVE_MAX, n // 2)))
        self._sorted_loss = np.sort(loss)

    @property
    def n(self) -> int:
        """Number of held-out samples."""
        return len(self.loss)

    def cosines(self, E: Any) -> np.ndarray:
        """(m, n) cosine of each phrase row of E (m, d) with every held-out sample."""
        E = np.atleast_2d(np.asarray(E, dtype=np.float32))
        if E.shape[1] != self.Z.shape[1]:
            raise DataError(f"phrase embeddings are {E.shape[1]}-d but the Reference is "
                            f"{self.Z.shape[1]}-d; encode phrases with the audit's encoder")
        if self.text_mean is not None:
            E = E - self.text_mean
        return _unit_rows(E) @ self.Z.T

    def retrieve(self, e: Any) -> np.ndarray:
        """Indices of the k held-out samples most similar to phrase embedding e, nearest first."""
        cos = self.cosines(e)[0]
        top = np.argpartition(-cos, self.k - 1)[: self.k]
        return top[np.argsort(-cos[top], kind="stable")]

    def margins(self, ea: Any, eb: Any) -> np.ndarray:
        """cos(x, a) - cos(x, b) for every held-out sample x."""
        cos = self.cosines(np.vstack([np.atleast_2d(ea), np.atleast_2d(eb)]))
        return cos[0] - cos[1]

    def retrieve_pair(self, ea: Any, eb: Any) -> tuple[np.ndarray, np.ndarray]:
        """(samples describing a, samples describing b): the k highest and k lowest margins."""
        order = np.argsort(self.margins(ea, eb), kind="stable")
        return order[::-1][: self.k], order[: self.k]

    def measure(self, idx: np.ndarray) -> Measured:
        """Mean measured loss of samples `idx` with its bootstrap interval, error rate, percentile."""
        values = self.loss[idx]
        low, high = _interval(_boot_means(values, np.random.default_rng(SEED)))
        mean = float(values.mean())
        pct = 100.0 * np.searchsorted(self._sorted_loss, mean, side="right") / self.n
        error = None if self.error is None else float(self.error[idx].mean())
        return Measured(mean=mean, low=low, high=high, n=len(idx), error=error,
                        percentile=float(pct))

    def measure_gap(self, idx_a: np.ndarray, idx_b: np.ndarray) -> MeasuredGap:
        """Mean measured loss of `idx_a` minus that of `idx_b`, with a bootstrap interval."""
        return bootstrap_gap(self.loss[idx_a], self.loss[idx_b])

    def examples(self, idx: np.ndarray, side: str | None = None,
                 limit: int = N_EXAMPLES) -> list[Example]:
        """The first `limit` samples of `idx` (most typical first) as Examples."""
        return [Example(id=self.ids[i], preview="" if self.previews is None else self.previews[i],
                        loss=float(self.loss[i]), side=side) for i in idx[:limit]]

    def separation_auroc(self, ea: Any, eb: Any, labels: Any) -> float | None:
        """Table 5's 0-shot AUROC: cos(x, a) - cos(x, b) scoring samples with the attribute
        (labels True) against those without; None when only one group is present."""
        mask = np.asarray(labels, dtype=bool)
        if mask.shape != (self.n,):
            raise DataError(f"labels has shape {mask.shape}; pass one per held-out sample")
        if mask.all() or not mask.any():
            return None
        from sklearn.metrics import roc_auc_score  # here: ~1 s to import, and only the audit needs it

        return float(roc_auc_score(mask, self.margins(ea, eb)))


def _boot_means(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """N_BOOT bootstrap means of `values`."""
    return values[rng.integers(0, len(values), (N_BOOT, len(values)))].mean(axis=1)


def _interval(boot: np.ndarray) -> tuple[float, float]:
    """The central INTERVAL of bootstrap draws."""
    tail = (1.0 - INTERVAL) / 2.0
    low, high = np.quantile(boot, [tail, 1.0 - tail])
    return float(low), float(high)


def bootstrap_gap(values_a: np.ndarray, values_b: np.ndarray) -> MeasuredGap:
    """mean(values_a) - mean(values_b) with a percentile-bootstrap INTERVAL interval."""
    rng = np.random.default_rng(SEED)
    boot = _boot_means(values_a, rng) - _boot_means(values_b, rng)
    low, high = _interval(boot)
    return MeasuredGap(diff=float(values_a.mean() - values_b.mean()), low=low, high=high,
                       n_a=len(values_a), n_b=len(values_b))


def labelled_gap(loss: np.ndarray, mask: np.ndarray) -> MeasuredGap:
    """Measured mean loss of samples with the attribute minus without, with a bootstrap interval:
    the truth a phrase pair about that attribute is judged against."""
    mask = np.asarray(mask, dtype=bool)
    return bootstrap_gap(np.asarray(loss, dtype=np.float64)[mask],
                         np.asarray(loss, dtype=np.float64)[~mask])
