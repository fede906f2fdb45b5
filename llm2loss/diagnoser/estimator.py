"""The LossDiagnoser estimator: its parameters and its public methods.

The work is done next door (`training`, `scoring`, `persistence`); this module holds what a user
sees: the constructor parameters with their reasons, scikit-learn's parameter contract
(`get_params(deep=...)`, `set_params`, so `sklearn.base.clone` works), and fit / predict /
compare / save / load.
"""

from __future__ import annotations

import numbers
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from llm2loss.devices import resolve_device
from llm2loss.diagnoser import persistence, readout, scoring, training
from llm2loss.diagnoser.checks import check_choice, check_matrix, check_positive_int
from llm2loss.diagnoser.heads import ARCHS
from llm2loss.diagnoser.objectives import NEGATIVES, OBJECTIVES
from llm2loss.diagnoser.rows import centre_in_place, normalise
from llm2loss.diagnoser.scoring import Comparison
from llm2loss.errors import DataError

__all__ = ["GAPS", "LossDiagnoser", "MIN_SAMPLES"]

GAPS = ("none", "center")
MIN_SAMPLES = 10


def _space(space: str, modality: str | None) -> str:
    """The query's space; `modality` is its former name, still read for old callers."""
    if modality is None:
        return space
    warnings.warn("the keyword `modality` of LossDiagnoser.predict/predict_members/compare is "
                  "now called `space` (\"data\" or \"text\"); pass space=... instead",
                  DeprecationWarning, stacklevel=3)
    return modality


class LossDiagnoser:
    """An ensemble of `n_members` heads predicting a model's per-sample loss from embeddings.

    Parameters
    ----------
    objective: "rank" (default; best at ordering samples, as in the paper), "regress" or
        "familiarity".
    arch: "mlp" (Linear-GELU-Linear) or "linear".
    n_members: ensemble size K.
    random_state: seed of initialisation, data order, validation split and negatives.
    gap: "none" (queries come from the same encoder as the data) or "center" (package doc).
    device: torch device; None picks cuda when available, else cpu (`llm2loss.devices`).
    hidden: MLP hidden width.
    max_epochs, batch_size, lr, weight_decay: AdamW training; the loss is summed over members so
        each member trains as if alone. lr=None means 1e-3 for "mlp" and 3e-3 for "linear" (the
        linear head reached the same held-out Spearman in fewer epochs at the higher rate on the
        synthetic tuning sets; on the image benchmark the linear heads still run to the cap).
    early_stopping, patience, validation_fraction: a held-out slice of the training data is scored
        after every epoch; each member keeps its best epoch and training stops once every member
        has gone `patience` epochs without improving.
    negatives: familiarity negatives, "random" (the paper's uniform random unit vectors) or
        "moments" (harder: Gaussian with the data's per-coordinate mean and std). "random" is the
        default because it was measured better (benchmarks/tune_core.py): a linear head cannot
        tell data from negatives that share its mean direction, so "moments" leaves it at chance
        and only suits the MLP.
    mixed_precision: bfloat16 autocast during training (off by default).
    pair_group: rank only. None pairs every two rows of a minibatch (B^2 pair terms per member);
        an integer g (default 64) pairs rows only inside consecutive groups of g rows of the
        (shuffled) minibatch, a random sample of B*g pairs. The pair loss is the one part of
        training that batching the members cannot share, so sampling makes the fit cheaper; on
        the synthetic tuning sets it gave the same held-out Spearman as all pairs.
    phrase_anchor: EXPERIMENTAL, not offered as an audit setting. Weight of an extra rank target
        on the phrases of `fit`'s `text_reference` (0, the default, turns it off). A linear
        ensemble with the same settings is fitted first, and the heads are also trained to order
        the reference phrases the way its scores order them, so that off the data manifold, where
        phrases sit, they follow the linear extrapolation. It orders the reference phrases as a
        whole long before it orders close phrase pairs: on the image benchmark (benchmarks/
        RESULTS.md `## Image`; the 60-epoch figure is from its earlier table, noted there) weight
        1 at 60 epochs got 4-5 of 6 attribute signs wrong, and at 300 epochs one of 6 on 3 of 4
        seeds. Fitting with it warns. It trains what the heads
        say at the phrases, so it needs text_readout="heads" where "auto" would read them linearly.
    bootstrap: True trains each member on its own bootstrap resample of the training rows, so
        the members' spread also reflects how much the answer depends on the data drawn. Off by
        default, by measurement (benchmarks/bench_trust.py): it did not make P better calibrated
        across the data sets, changed no verdict, and cost held-out Spearman on one. Verdicts do
        not rest on P alone (`llm2loss.verdicts`).
    text_readout: how text-space queries (phrases) are scored: "heads" (the heads at the phrase's
        point, as in the paper), "linear" (each member's ridge fit of its own scores on the rows
        it was fitted on: the heads' best linear approximation over the data, not their value at
        one point off the images' manifold) or "auto" (default: "linear" for rank/regress MLPs
        with gap="center", else "heads"). Data rows are always scored with the heads. A saved
        diagnoser records the readout it was fitted with. Why, and what it measured:
        `llm2loss.diagnoser.readout`.

    Fitted attributes: dim_, data_mean_, text_mean_ (None without text_reference), heads_,
    device_, n_epochs_ (epochs run), validation_scores_ (per member at its best epoch: Spearman
    for rank, MSE of the standardised target for regress, 1 - AUROC for familiarity; None
    without early stopping), member_center_/member_scale_, target_mean_/target_std_,
    text_readout_ ("heads" or "linear", what "auto" became), readout_weight_ (K, dim) and
    readout_bias_ (K,) of the linear readout (None with "heads").

    The defaults were chosen by measurement on synthetic losses (benchmarks/tune_core.py, one
    setting varied at a time); no variant moved the held-out Spearman beyond the spread between
    data sets, and the ranker beat the regressor. max_epochs=300 and text_readout="auto" were
    chosen on the image benchmark (`## Image`: its MLP heads need the epochs, and phrases read
    with their heads then turn signs). The figures are in benchmarks/RESULTS.md
    (`## Core: default tuning`, `## Trust`, `## Image`), where a rerun updates them.
    """

    def __init__(self, objective: str = "rank", arch: str = "mlp", *, n_members: int = 5,
                 random_state: int = 0, gap: str = "none", device: str | None = None,
                 hidden: int = 64, max_epochs: int = 300, batch_size: int = 256,
                 lr: float | None = None, weight_decay: float = 1e-2, early_stopping: bool = True,
                 patience: int = 5, validation_fraction: float = 0.15,
                 negatives: str = "random", mixed_precision: bool = False,
                 pair_group: int | None = 64, bootstrap: bool = False,
                 phrase_anchor: float = 0.0, text_readout: str = "auto") -> None:
        self.objective = objective
        self.arch = arch
        self.n_members = n_members
        self.random_state = random_state
        self.gap = gap
        self.device = device
        self.hidden = hidden
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.early_stopping = early_stopping
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.negatives = negatives
        self.mixed_precision = mixed_precision
        self.pair_group = pair_group
        self.bootstrap = bootstrap
        self.phrase_anchor = phrase_anchor
        self.text_readout = text_readout

    # ------------------------------------------------------------------ parameters
    _PARAMS = ("objective", "arch", "n_members", "random_state", "gap", "device", "hidden",
               "max_epochs", "batch_size", "lr", "weight_decay", "early_stopping", "patience",
               "validation_fraction", "negatives", "mixed_precision", "pair_group", "bootstrap",
               "phrase_anchor", "text_readout")

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor parameters (JSON-able). `deep` is accepted for scikit-learn's
        `clone` and `GridSearchCV`; no parameter is itself an estimator, so it changes nothing."""
        return {k: getattr(self, k) for k in self._PARAMS}

    def set_params(self, **params: Any) -> LossDiagnoser:
        """Set constructor parameters (scikit-learn's contract); ValueError naming the valid ones
        for an unknown name. Checked at the next `fit`, like the constructor's."""
        unknown = sorted(set(params) - set(self._PARAMS))
        if unknown:
            raise ValueError(f"unknown parameter(s) {unknown} of LossDiagnoser: choose from "
                             f"{', '.join(self._PARAMS)}")
        for name, value in params.items():
            setattr(self, name, value)
        return self

    def _check_params(self) -> None:
        check_choice(self.objective, OBJECTIVES, "objective")
        check_choice(self.arch, ARCHS, "arch")
        check_choice(self.gap, GAPS, "gap")
        check_choice(self.negatives, NEGATIVES, "negatives")
        check_choice(self.text_readout, readout.READOUTS, "text_readout")
        if self.text_readout == "linear" and self.objective == "familiarity":
            raise ValueError("text_readout='linear' applies to the loss objectives ('rank', "
                             "'regress'): a familiarity head scores data against negatives, and a "
                             "linear fit over the data alone says nothing about that; use 'auto' "
                             "or 'heads'")
        for name in ("n_members", "hidden", "max_epochs", "batch_size", "patience"):
            setattr(self, name, check_positive_int(getattr(self, name), name))  # np.int64 -> int
        if self.pair_group is not None:
            try:
                self.pair_group = check_positive_int(self.pair_group, "pair_group", 2)
            except ValueError:
                raise ValueError(f"pair_group must be an integer >= 2 or None (all pairs of a "
                                 f"minibatch), got {self.pair_group!r}") from None
        if not isinstance(self.bootstrap, bool):
            raise ValueError(f"bootstrap must be True or False, got {self.bootstrap!r}")
        if self.lr is not None and not self.lr > 0:
            raise ValueError(f"lr must be a positive number or None (arch default), got "
                             f"{self.lr!r}")
        if not (isinstance(self.phrase_anchor, numbers.Real) and not isinstance(self.phrase_anchor, bool)
                and np.isfinite(self.phrase_anchor) and self.phrase_anchor >= 0):
            raise ValueError(f"phrase_anchor must be a finite number >= 0 (0 turns it off), got "
                             f"{self.phrase_anchor!r}")
        self.phrase_anchor = float(self.phrase_anchor)  # np.float32 -> float, so it saves as JSON
        if self.phrase_anchor and (self.objective == "familiarity" or self.arch == "linear"):
            raise ValueError(f"phrase_anchor applies to arch 'mlp' of the loss objectives ('rank', "
                             f"'regress'), not {self.objective}-{self.arch} (a linear head is its own "
                             f"anchor): set phrase_anchor=0")
        if self.phrase_anchor and readout.resolve(self.text_readout, self.objective, self.arch,
                                                  self.gap) == "linear":
            raise ValueError("phrase_anchor trains the heads at the phrases' points, but "
                             f"text_readout={self.text_readout!r} reads phrases with the linear "
                             f"readout here (gap={self.gap!r}), which the anchor does not train: "
                             "set text_readout='heads' to use phrase_anchor")
        if not 0.0 < self.validation_fraction < 0.5:
            raise ValueError(f"validation_fraction must be in (0, 0.5), got "
                             f"{self.validation_fraction!r}")

    def __repr__(self) -> str:
        return (f"LossDiagnoser(objective={self.objective!r}, arch={self.arch!r}, "
                f"n_members={self.n_members}, gap={self.gap!r})")

    # ------------------------------------------------------------------ fit
    def fit(self, X: Any, loss: Any = None, *, text_reference: Any = None) -> LossDiagnoser:
        """Train the ensemble on embeddings `X` (n, dim) and per-sample `loss` (n,).

        `loss` is required for "rank" and "regress" and ignored by "familiarity".
        `text_reference` (m, dim), optional: phrase embeddings whose mean centres text queries
        when gap="center", and the phrases that `phrase_anchor` orders.
        """
        self._check_params()
        X = check_matrix(X, "X", min_rows=MIN_SAMPLES)
        n, dim = X.shape
        targets = training.training_targets(self, loss, n)
        ref = None if text_reference is None else check_matrix(text_reference, "text_reference", dim=dim)
        anchor = None
        if self.phrase_anchor:
            if ref is None or len(ref) < 2:
                raise DataError("phrase_anchor > 0 needs at least 2 phrases to order: pass "
                                "fit(..., text_reference=phrase_embeddings) or set phrase_anchor=0")
            warnings.warn("phrase_anchor is experimental: on the image benchmark it turned attribute "
                          "disparities the wrong way round at 60 epochs; check its answers against "
                          "measured ones (benchmarks/RESULTS.md, ## Image) before trusting them",
                          UserWarning, stacklevel=2)
            anchor = self._phrase_anchor(X, loss, ref)  # before Z: its own copy of X is gone by then
        # The one copy of X that fitting makes: normalised (and centred) in place from here on.
        Z = normalise(X)
        self.dim_ = dim
        self.data_mean_ = Z.mean(axis=0, dtype=np.float64).astype(np.float32)
        self.text_mean_: np.ndarray | None = None
        if ref is not None:
            self.text_mean_ = normalise(ref).mean(axis=0).astype(np.float32)
        if self.gap == "center":
            centre_in_place(Z, self.data_mean_)
        self.device_ = torch.device(resolve_device(self.device))
        self.heads_ = training.train_heads(self, Z, targets, anchor=anchor)
        training.calibrate(self, Z)
        return self

    def _phrase_anchor(self, X: np.ndarray, loss: Any, ref: np.ndarray) -> training.Anchor:
        """(reference phrase rows as the heads see them, a linear ensemble's scores of them)."""
        linear = LossDiagnoser(**{**self.get_params(), "arch": "linear", "phrase_anchor": 0.0})
        linear.fit(X, loss, text_reference=ref)
        rows = normalise(ref)
        if self.gap == "center":
            centre_in_place(rows, linear.text_mean_)  # the mean this fit stores as text_mean_
        return rows, linear.predict(ref, space="text").astype(np.float32), float(self.phrase_anchor)

    # ------------------------------------------------------------------ predict
    def predict_members(self, X: Any, *, space: str = "data",
                        modality: str | None = None) -> np.ndarray:
        """Every member's output, shape (n_members, n) (see the package doc for the units).

        `space` is where the rows come from: "data" (like the fitted rows) or "text" (phrase
        embeddings). `modality` is the former name of `space` (deprecated)."""
        return scoring.member_outputs(self, X, _space(space, modality))

    def predict(self, X: Any, *, space: str = "data", modality: str | None = None) -> np.ndarray:
        """Ensemble mean, shape (n,): higher = higher expected loss (or more familiar)."""
        return scoring.member_outputs(self, X, _space(space, modality)).mean(axis=0)

    def compare(self, Xa: Any, Xb: Any, *, space: str = "data",
                modality: str | None = None) -> Comparison:
        """Compare row i of `Xa` against row i of `Xb` over the members.

        With gap="center", space="text" and no stored text reference, both sides are
        centred with the mean of all rows of Xa and Xb together.
        """
        return scoring.compare(self, Xa, Xb, _space(space, modality))

    # ------------------------------------------------------------------ save / load
    def save(self, path: str | Path) -> Path:
        """Write `weights.safetensors` and `diagnoser.json` into directory `path`."""
        return persistence.save(self, path)

    @classmethod
    def load(cls, path: str | Path, *, device: str | None = None) -> LossDiagnoser:
        """Read a diagnoser written by `save` (no code is executed: JSON + safetensors)."""
        return persistence.load(cls, path, device=device)
