"""LossDiagnoser: a small ensemble mapping language-aligned embeddings to a model's loss.

`fit(X, loss)` trains K members (one batched torch module, `llm2loss.heads.MemberHeads`) with one
of three objectives (`llm2loss.objectives`): "rank" (which samples lose more), "regress" (how much
they lose) or "familiarity" (data vs generated negatives; `loss` is ignored). `predict` gives the
ensemble mean, `predict_members` every member, and `compare(Xa, Xb)` the distribution over members
of the score difference between paired rows, which is how two phrases are compared with an
uncertainty. Numpy in, numpy out; torch only inside.

Outputs: "rank" scores are standardised per member over the training data (0 = an average
training sample, 1 = one standard deviation of that member's scores higher), so members are on one
scale and averaging them is meaningful; "regress" outputs are in loss units (the inverse of the
signed-log target transform); "familiarity" outputs are logits (higher = more like the data), never
probabilities, which saturate and tie on clearly separated inputs.

Modality gap: text embeddings of CLIP-like encoders sit away from the image embeddings. With
`gap="center"` the data mean (stored at fit) is subtracted from data rows, and the text-reference
mean (from `fit(..., text_reference=...)`, or else the mean of the query batch) from text rows;
both are renormalised. The heads are trained on centred data, so both sides meet in one frame.

Saved as a directory: `weights.safetensors` (tensors only) and `diagnoser.json` (parameters and
scalars). Loading reads those two files and never runs code.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from llm2loss.diagnoser_checks import (check_positive_int, check_saved_shapes, check_saved_vectors,
                                       check_training_targets, real_array)
from llm2loss.errors import ConfigError, DataError, NotFittedError, NotFoundError, WeightsError
from llm2loss.heads import ARCHS, MemberHeads
from llm2loss.objectives import (NEGATIVES, OBJECTIVES, inverse_slog, sample_negatives, slog,
                                 training_loss, validation_criterion)

GAPS = ("none", "center")
MODALITIES = ("data", "text")
MIN_SAMPLES = 10
FORMAT = "llm2loss-diagnoser/1"
_PREDICT_CHUNK = 65536  # rows per chunk at most
# Bytes of one chunk's widest activation (rows x members x width x 4). Kept below glibc's mmap
# threshold (32 MiB at most), freed activations are reused from the heap instead of being mapped
# and page-faulted afresh for every chunk: 1M x 512 through 5 MLP members went 3.9 s -> 2.4 s.
_ACTIVATION_BYTES = 8 << 20


@dataclass(frozen=True)
class Comparison:
    """Row-wise comparison of a against b over the ensemble members.

    p_higher: (k,) fraction of members scoring a above b, a tie counting one half; NaN with a
        single member, which can show no disagreement and so gives no probability.
    differences: (n_members, k) member score of a minus member score of b.
    quartiles: (5, k) min, q1, median, q3, max of the differences.
    """

    p_higher: np.ndarray
    differences: np.ndarray
    quartiles: np.ndarray


def p_higher(differences: np.ndarray) -> np.ndarray:
    """P(a above b) per column of member differences (K, k): ties count one half.

    A zero difference is no evidence either way, so `compare(X, X)` gives 0.5, never 0. With one
    member there is no spread to read a probability from: NaN.
    """
    diff = np.asarray(differences, dtype=np.float64)
    if diff.shape[0] < 2:
        return np.full(diff.shape[1:], np.nan)
    return (diff > 0).mean(axis=0) + 0.5 * (diff == 0).mean(axis=0)


def _check_choice(value: object, choices: tuple[str, ...], what: str) -> None:
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}: choose one of {', '.join(choices)}")


def _first_bad(mask: np.ndarray, limit: int = 5) -> str:
    return ", ".join(str(i) for i in np.flatnonzero(mask)[:limit])


def check_matrix(X: Any, name: str, *, dim: int | None = None, min_rows: int = 1) -> np.ndarray:
    """`X` as a finite float32 (n, dim) array, or a DataError naming the problem and the fix."""
    arr = real_array(X, name).astype(np.float32, copy=False)
    if arr.ndim == 1 and dim is not None and arr.shape[0] == dim:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise DataError(f"{name} must be a 2-D array (n_samples, dim), got shape {arr.shape}; "
                        f"reshape it, e.g. {name}.reshape(1, -1) for a single row")
    if arr.shape[0] < min_rows:
        raise DataError(f"{name} has {arr.shape[0]} rows but at least {min_rows} are needed; "
                        f"pass more samples")
    if dim is not None and arr.shape[1] != dim:
        raise DataError(f"{name} has dimension {arr.shape[1]} but the diagnoser was fitted on "
                        f"dimension {dim}; embed with the same encoder used for fitting")
    bad = _nonfinite_rows(arr)
    if bad.any():
        raise DataError(f"{name} has {int(bad.sum())} rows with NaN or inf (first rows: "
                        f"{_first_bad(bad)}); drop or re-embed those samples")
    return arr


def check_vector(v: Any, name: str, *, length: int) -> np.ndarray:
    """`v` as a finite float64 (length,) array, or a DataError naming the problem and the fix."""
    arr = real_array(v, name).astype(np.float64, copy=False)
    if arr.ndim != 1:
        raise DataError(f"{name} must be a 1-D array, got shape {arr.shape}; flatten it")
    if arr.shape[0] != length:
        raise DataError(f"{name} has {arr.shape[0]} values but X has {length} rows; pass one "
                        f"{name} value per row of X")
    bad = ~np.isfinite(arr)
    if bad.any():
        raise DataError(f"{name} has {int(bad.sum())} NaN or inf values (first indices: "
                        f"{_first_bad(bad)}); drop those samples or fix the loss computation")
    return arr


def _nonfinite_rows(arr: np.ndarray) -> np.ndarray:
    """Boolean mask of rows holding NaN or inf, without a full-size temporary.

    A row holding NaN or inf has a non-finite sum (one BLAS pass); rows whose sum is non-finite
    for another reason (overflow of huge finite values) are then checked element by element.
    """
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is handled just below
        suspects = ~np.isfinite(arr @ np.ones(arr.shape[1], dtype=arr.dtype))
    if suspects.any():  # a float32 row sum can also overflow: confirm the suspects exactly
        suspects[suspects] = ~np.isfinite(arr[suspects]).all(axis=1)
    return suspects


def _normalise(X: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero); float32 in, float32 out."""
    rows, inverse_norms = _inverse_norms(X)
    return rows * inverse_norms[:, None]


def _inverse_norms(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, 1 / row norm) for scoring rows as if L2-normalised without copying them.

    Rows whose squared norm overflows float32 (finite values above ~1e19) are first divided by
    their largest magnitude, in a copy of the chunk, so they score like any other row."""
    with np.errstate(over="ignore"):
        sq = np.einsum("ij,ij->i", rows, rows)
    huge = ~np.isfinite(sq)
    if huge.any():
        rows = rows.copy()
        rows[huge] /= np.abs(rows[huge]).max(axis=1, keepdims=True)
        sq[huge] = np.einsum("ij,ij->i", rows[huge], rows[huge])
    return rows, (1.0 / np.maximum(np.sqrt(sq), 1e-12)).astype(np.float32)


def _centre_in_place(Z: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Subtract `mean` from the rows of Z and renormalise them, in place; returns Z."""
    Z -= mean
    Z *= _inverse_norms(Z)[1][:, None]  # centred unit rows cannot overflow: Z is scaled in place
    return Z


def resolve_device(device: str | None) -> torch.device:
    """The given torch device, or cuda when available, else cpu."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class LossDiagnoser:
    """An ensemble of `n_members` heads predicting a model's per-sample loss from embeddings.

    Parameters
    ----------
    objective: "rank" (default; best at ordering samples, as in the paper), "regress" or
        "familiarity".
    arch: "mlp" (Linear-GELU-Linear) or "linear".
    n_members: ensemble size K.
    random_state: seed of initialisation, data order, validation split and negatives.
    gap: "none" (queries come from the same encoder as the data) or "center" (see module doc).
    device: torch device; None picks cuda when available, else cpu.
    hidden: MLP hidden width.
    max_epochs, batch_size, lr, weight_decay: AdamW training; the loss is summed over members so
        each member trains as if alone. lr=None means 1e-3 for "mlp" and 3e-3 for "linear" (the
        linear head reached the same held-out Spearman in half the epochs at 3e-3).
    early_stopping, patience, validation_fraction: a held-out slice of the training data is scored
        after every epoch; each member keeps its best epoch and training stops once every member
        has gone `patience` epochs without improving.
    negatives: familiarity negatives, "random" (the paper's uniform random unit vectors) or
        "moments" (harder: Gaussian with the data's per-coordinate mean and std). "random" is the
        default because it was measured better: benchmarks/tune_core.py (held-out data vs
        unseen concept clusters, dims 384/512) gives AUROC 1.000 (linear) / 1.000 (mlp) for
        "random" but 0.497 / 1.000 for "moments": a linear head cannot tell data from negatives
        that share its mean direction, so "moments" only suits the MLP.
    mixed_precision: bfloat16 autocast during training (off by default).
    pair_group: rank only. None pairs every two rows of a minibatch (B^2 pair terms per member);
        an integer g (default 64) pairs rows only inside consecutive groups of g rows of the
        (shuffled) minibatch, a random sample of B*g pairs. The pair loss is the one part of
        training that batching the members cannot share, so sampling makes the 5-member fit
        cheaper; on 12 synthetic data sets (benchmarks/tune_core.py) groups of 64 and 32 gave the
        same held-out Spearman as all pairs (differences within +-0.001, better on about half).
    bootstrap: each member trains on its own bootstrap resample of the training rows (default),
        so the members' spread reflects how much the answer depends on the data drawn, not only
        on initialisation and data order; members that differ only by their seed agree even where
        the data cannot support an answer (benchmarks/bench_trust.py measures the calibration).

    Fitted attributes: dim_, data_mean_, text_mean_ (None without text_reference), heads_,
    device_, n_epochs_ (epochs run), validation_scores_ (per member at its best epoch: Spearman
    for rank, MSE of the standardised target for regress, 1 - AUROC for familiarity; None
    without early stopping), member_center_/member_scale_, target_mean_/target_std_.

    Defaults were measured on synthetic losses (benchmarks/core_synthetic.py) with
    benchmarks/tune_core.py: 12 data sets (nonlinear d=384 and planted d=512, n=1000 and 4000,
    3 seeds), one setting varied at a time. No variant of hidden, lr, weight_decay, batch_size,
    patience or pair_group moved the mean held-out Spearman by more than 0.004, and the ranker
    beat the regressor (0.311 vs 0.298 for mlp); see the `## Core: default tuning` table in
    benchmarks/RESULTS.md.
    """

    def __init__(self, objective: str = "rank", arch: str = "mlp", *, n_members: int = 5,
                 random_state: int = 0, gap: str = "none", device: str | None = None,
                 hidden: int = 64, max_epochs: int = 60, batch_size: int = 256,
                 lr: float | None = None, weight_decay: float = 1e-2, early_stopping: bool = True,
                 patience: int = 5, validation_fraction: float = 0.15,
                 negatives: str = "random", mixed_precision: bool = False,
                 pair_group: int | None = 64, bootstrap: bool = True) -> None:
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

    # ------------------------------------------------------------------ parameters
    _PARAMS = ("objective", "arch", "n_members", "random_state", "gap", "device", "hidden",
               "max_epochs", "batch_size", "lr", "weight_decay", "early_stopping", "patience",
               "validation_fraction", "negatives", "mixed_precision", "pair_group", "bootstrap")

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor parameters (JSON-able). `deep` is accepted for scikit-learn's
        `clone` and `GridSearchCV`; no parameter is itself an estimator, so it changes nothing."""
        return {k: getattr(self, k) for k in self._PARAMS}

    def set_params(self, **params: Any) -> "LossDiagnoser":
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
        _check_choice(self.objective, OBJECTIVES, "objective")
        _check_choice(self.arch, ARCHS, "arch")
        _check_choice(self.gap, GAPS, "gap")
        _check_choice(self.negatives, NEGATIVES, "negatives")
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
        if not 0.0 < self.validation_fraction < 0.5:
            raise ValueError(f"validation_fraction must be in (0, 0.5), got "
                             f"{self.validation_fraction!r}")

    def __repr__(self) -> str:
        return (f"LossDiagnoser(objective={self.objective!r}, arch={self.arch!r}, "
                f"n_members={self.n_members}, gap={self.gap!r})")

    # ------------------------------------------------------------------ fit
    def fit(self, X: Any, loss: Any = None, *, text_reference: Any = None) -> "LossDiagnoser":
        """Train the ensemble on embeddings `X` (n, dim) and per-sample `loss` (n,).

        `loss` is required for "rank" and "regress" and ignored by "familiarity".
        `text_reference` (m, dim), optional: phrase embeddings whose mean centres text queries
        when gap="center".
        """
        self._check_params()
        X = check_matrix(X, "X", min_rows=MIN_SAMPLES)
        n, dim = X.shape
        targets = self._targets(loss, n)
        # The one copy of X that fitting makes: normalised (and centred) in place from here on.
        Z = _normalise(X)
        self.dim_ = dim
        self.data_mean_ = Z.mean(axis=0, dtype=np.float64).astype(np.float32)
        self.text_mean_: np.ndarray | None = None
        if text_reference is not None:
            ref = check_matrix(text_reference, "text_reference", dim=dim)
            self.text_mean_ = _normalise(ref).mean(axis=0).astype(np.float32)
        if self.gap == "center":
            _centre_in_place(Z, self.data_mean_)
        self.device_ = resolve_device(self.device)
        self.heads_ = self._train(Z, targets)
        self._calibrate(Z)
        return self

    def _targets(self, loss: Any, n: int) -> np.ndarray:
        """Training targets: raw losses (rank), standardised slog losses (regress), none."""
        if self.objective == "familiarity":
            return np.ones(n, dtype=np.float32)
        if loss is None:
            raise DataError(f"objective {self.objective!r} needs the per-sample loss: call "
                            f"fit(X, loss) (only 'familiarity' fits on X alone)")
        y = check_vector(loss, "loss", length=n)
        if np.ptp(y) == 0:
            raise DataError(f"loss is constant ({y[0]!r}) so there is nothing to "
                            f"{self.objective}; check that per-sample losses were computed")
        if self.objective == "rank":
            self.target_mean_, self.target_std_ = 0.0, 1.0
            with np.errstate(over="ignore"):  # overflow is reported just below
                return check_training_targets(y.astype(np.float32), y, self.objective)
        t = slog(y)
        self.target_mean_, self.target_std_ = float(t.mean()), float(t.std())
        return check_training_targets(((t - self.target_mean_) / self.target_std_).astype(np.float32),
                                      y, self.objective)

    def _split(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        order = rng.permutation(n)
        if not self.early_stopping:
            return order, order[:0]
        n_val = min(max(int(round(self.validation_fraction * n)), 5), n // 2)
        return order[n_val:], order[:n_val]

    def _train(self, Z: np.ndarray, targets: np.ndarray) -> MemberHeads:
        """Train all members together; return the heads with each member's best state."""
        K, dev = self.n_members, self.device_
        rng = np.random.default_rng(self.random_state)
        train_idx, val_idx = self._split(len(Z), rng)
        gen = torch.Generator().manual_seed(int(self.random_state))
        heads = MemberHeads(K, Z.shape[1], arch=self.arch, hidden=self.hidden,
                            seed=self.random_state).to(dev)
        lr = self.lr if self.lr is not None else (1e-3 if self.arch == "mlp" else 3e-3)
        opt = torch.optim.AdamW(heads.parameters(), lr=lr, weight_decay=self.weight_decay)
        # Minibatches are gathered from Z through the train indices: no shuffled copy of the
        # training rows is made (on CPU; a GPU holds one copy of Z in its own memory).
        Zt = torch.from_numpy(Z).to(dev)
        train_rows = torch.from_numpy(train_idx).to(dev)
        y_all = torch.from_numpy(targets).to(dev)
        moments = (Zt.mean(dim=0), Zt.std(dim=0))
        val = self._validation_set(Z, targets, val_idx, moments, gen)
        n_tr = len(train_idx)
        n_batches = max(1, math.ceil(n_tr / self.batch_size))
        bounds = np.linspace(0, n_tr, n_batches + 1).round().astype(int)
        best = torch.full((K,), float("inf"))
        best_state = [heads.member_state(k) for k in range(K)]
        stale = torch.zeros(K, dtype=torch.long)
        self.n_epochs_ = 0
        member_rows = self._member_rows(train_rows, K, gen)  # (K, n_tr) rows each member sees
        for _epoch in range(self.max_epochs):
            heads.train()
            perms = torch.argsort(torch.rand(K, n_tr, generator=gen), dim=1).to(dev)
            for lo, hi in zip(bounds[:-1], bounds[1:]):
                idx = torch.gather(member_rows, 1, perms[:, lo:hi])
                xb, yb = Zt[idx], y_all[idx]
                if self.objective == "familiarity":
                    xb, yb = self._with_negatives(xb, moments, gen)
                with torch.autocast(dev.type, dtype=torch.bfloat16,
                                    enabled=self.mixed_precision):
                    scores = heads(xb)
                loss = training_loss(self.objective, scores.float(), yb, self.pair_group)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            self.n_epochs_ += 1
            if val is None:
                continue
            crit = self._criterion(heads, val).cpu()
            improved = crit < best - 1e-4
            for k in torch.nonzero(improved).flatten().tolist():
                best_state[k] = heads.member_state(k)
            best = torch.where(improved, crit, best)
            stale = torch.where(improved, torch.zeros_like(stale), stale + 1)
            if bool((stale >= self.patience).all()):
                break
        self.validation_scores_: list[float] | None = None
        if val is not None:
            for k in range(K):
                heads.load_member_state(k, best_state[k])
            self.validation_scores_ = (-best if self.objective == "rank" else best).tolist()
        heads.eval()
        return heads

    def _member_rows(self, train_rows: torch.Tensor, K: int, gen: torch.Generator) -> torch.Tensor:
        """Each member's training rows, (K, n_tr): a bootstrap resample each, or all rows."""
        n_tr = len(train_rows)
        if not self.bootstrap:
            return train_rows.unsqueeze(0).expand(K, n_tr)
        draw = torch.randint(0, n_tr, (K, n_tr), generator=gen).to(train_rows.device)
        return train_rows[draw]

    def _with_negatives(self, xb: torch.Tensor, moments: tuple[torch.Tensor, torch.Tensor],
                        gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Append one fresh negative per positive to each member's batch; labels 1 then 0."""
        K, b, d = xb.shape
        neg = sample_negatives(self.negatives, K * b, dim=d, mean=moments[0], std=moments[1],
                               generator=gen, device=xb.device).view(K, b, d)
        labels = torch.cat([torch.ones(K, b), torch.zeros(K, b)], dim=1).to(xb.device)
        return torch.cat([xb, neg], dim=1), labels

    def _validation_set(self, Z: np.ndarray, targets: np.ndarray, val_idx: np.ndarray,
                        moments: tuple[torch.Tensor, torch.Tensor], gen: torch.Generator
                        ) -> tuple[torch.Tensor, torch.Tensor] | None:
        if len(val_idx) == 0:
            return None
        dev = self.device_
        xv = torch.from_numpy(Z[val_idx]).to(dev)
        if self.objective == "rank":
            from scipy.stats import rankdata  # here: scipy.stats costs ~1 s to import, and only fit needs it

            yv = torch.from_numpy(rankdata(targets[val_idx]).astype(np.float32)).to(dev)
        elif self.objective == "regress":
            yv = torch.from_numpy(targets[val_idx]).to(dev)
        else:
            neg = sample_negatives(self.negatives, len(val_idx), dim=Z.shape[1],
                                   mean=moments[0], std=moments[1], generator=gen, device=dev)
            xv = torch.cat([xv, neg])
            yv = torch.cat([torch.ones(len(val_idx)), torch.zeros(len(val_idx))]).to(dev)
        return xv, yv

    @torch.no_grad()
    def _criterion(self, heads: MemberHeads, val: tuple[torch.Tensor, torch.Tensor]
                   ) -> torch.Tensor:
        heads.eval()
        return validation_criterion(self.objective, heads(val[0]), val[1])

    def _calibrate(self, Z: np.ndarray) -> None:
        """Per-member centre/scale so that rank members share one scale (see module doc)."""
        K = self.n_members
        if self.objective == "rank":
            raw = self._raw_scores(Z)
            self.member_center_ = raw.mean(axis=1).astype(np.float32)
            self.member_scale_ = np.maximum(raw.std(axis=1), 1e-12).astype(np.float32)
        else:
            self.member_center_ = np.zeros(K, dtype=np.float32)
            self.member_scale_ = np.ones(K, dtype=np.float32)

    # ------------------------------------------------------------------ predict
    def _check_fitted(self) -> None:
        if not hasattr(self, "heads_"):
            raise NotFittedError("this LossDiagnoser is not fitted yet: call fit(X, loss) or "
                                 "LossDiagnoser.load(path) before predicting")

    def _prepare(self, X: Any, modality: str, name: str = "X",
                 text_mean: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """Checked query rows and the mean to centre them with after normalising (None for
        gap="none"). Normalising and centring happen chunk by chunk in `_query_scores`, so a
        large query is never copied whole."""
        self._check_fitted()
        _check_choice(modality, MODALITIES, "modality")
        X = check_matrix(X, name, dim=self.dim_)
        if self.gap == "none":
            return X, None
        if modality == "data":
            return X, self.data_mean_
        return X, self._text_mean(X) if text_mean is None else text_mean

    def _query_scores(self, X: np.ndarray, centre: np.ndarray | None) -> np.ndarray:
        """Raw member scores (K, n) of checked query rows, normalised (and centred) per chunk.

        Without centring, the L2 normalisation is folded into the first layer as a row scale
        (no normalised copy of the rows is made)."""
        if centre is None:
            return self._raw_scores(X, scale=True)
        return self._raw_scores(X, lambda chunk: _centre_in_place(_normalise(chunk), centre))

    def _text_mean(self, X: np.ndarray) -> np.ndarray:
        """The text-reference mean stored at fit, else the mean of the (>= 2 row) query batch
        (normalised first)."""
        if self.text_mean_ is not None:
            return self.text_mean_
        if len(X) < 2:
            raise DataError("gap='center' needs a text reference to centre a single phrase: "
                            "pass fit(..., text_reference=phrase_embeddings) or query at least "
                            "2 phrases at once")
        return _normalise(X).mean(axis=0)

    @torch.no_grad()
    def _raw_scores(self, Z: np.ndarray, prepare: Callable[[np.ndarray], np.ndarray] | None = None,
                    *, scale: bool = False) -> np.ndarray:
        """Raw member scores (K, n) of rows `Z`, in chunks (see `_chunk_rows`). `prepare` (if
        given) maps each chunk first; `scale=True` scores each row as if L2-normalised (see
        `MemberHeads.forward`'s row_scale)."""
        self.heads_.eval()
        out = np.empty((self.n_members, len(Z)), dtype=np.float32)
        step = self._chunk_rows()
        for lo in range(0, len(Z), step):
            rows = np.ascontiguousarray(Z[lo:lo + step])
            if prepare is not None:
                rows = prepare(rows)
            row_scale = None
            if scale:
                rows, row_scale = _inverse_norms(rows)
                row_scale = torch.from_numpy(row_scale).to(self.device_)
            if not rows.flags.writeable:  # e.g. a memory-mapped query: torch wants writeable
                rows = rows.copy()
            chunk = torch.from_numpy(rows).to(self.device_)
            out[:, lo:lo + len(rows)] = self.heads_(chunk, row_scale).float().cpu().numpy()
            del chunk, rows  # free this chunk before the next one is prepared
        return out

    def _chunk_rows(self) -> int:
        """Rows per prediction chunk: as many as keep the hidden activations (rows x members x
        width) within `_ACTIVATION_BYTES`, between 1024 and `_PREDICT_CHUNK`. (The input rows
        of a chunk are usually a view of the query, not a new allocation.)"""
        width = self.n_members * (self.hidden if self.arch == "mlp" else 1) * 4
        return max(min(1024, _PREDICT_CHUNK), min(_PREDICT_CHUNK, _ACTIVATION_BYTES // width))

    def _output(self, raw: np.ndarray) -> np.ndarray:
        z = (raw - self.member_center_[:, None]) / self.member_scale_[:, None]
        if self.objective == "regress":
            # in float64: losses up to ~1e308 (their slog is ~710) would overflow float32 here
            return inverse_slog(z.astype(np.float64) * self.target_std_ + self.target_mean_)
        return z.astype(np.float64)

    def predict_members(self, X: Any, *, modality: str = "data") -> np.ndarray:
        """Every member's output, shape (n_members, n) (see the module doc for the units)."""
        return self._output(self._query_scores(*self._prepare(X, modality)))

    def predict(self, X: Any, *, modality: str = "data") -> np.ndarray:
        """Ensemble mean, shape (n,): higher = higher expected loss (or more familiar)."""
        return self.predict_members(X, modality=modality).mean(axis=0)

    def compare(self, Xa: Any, Xb: Any, *, modality: str = "data") -> Comparison:
        """Compare row i of `Xa` against row i of `Xb` over the members.

        With gap="center", modality="text" and no stored text reference, both sides are
        centred with the mean of all rows of Xa and Xb together.
        """
        self._check_fitted()
        A = check_matrix(Xa, "Xa", dim=self.dim_)
        B = check_matrix(Xb, "Xb", dim=self.dim_)
        if A.shape[0] != B.shape[0]:
            raise DataError(f"Xa has {A.shape[0]} rows but Xb has {B.shape[0]}; compare() pairs "
                            f"row i of Xa with row i of Xb, so pass equally many rows")
        text_mean = None
        if self.gap == "center" and modality == "text":
            text_mean = self._text_mean(np.concatenate([A, B]))
        ma = self._output(self._query_scores(*self._prepare(A, modality, "Xa", text_mean)))
        mb = self._output(self._query_scores(*self._prepare(B, modality, "Xb", text_mean)))
        diff = ma - mb
        return Comparison(p_higher=p_higher(diff), differences=diff,
                          quartiles=np.quantile(diff, [0.0, 0.25, 0.5, 0.75, 1.0], axis=0))

    # ------------------------------------------------------------------ save / load
    def save(self, path: str | Path) -> Path:
        """Write `weights.safetensors` and `diagnoser.json` into directory `path`."""
        self._check_fitted()
        out = Path(path)
        try:
            out.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise ConfigError(f"cannot save the diagnoser to {out}: it (or a folder above it) is "
                              "a file; give the path of a folder") from None
        tensors = {f"param.{i}": p.detach().float().cpu().numpy()
                   for i, p in enumerate(self.heads_.parameters())}
        tensors["data_mean"] = self.data_mean_
        tensors["member_center"] = self.member_center_
        tensors["member_scale"] = self.member_scale_
        if self.text_mean_ is not None:
            tensors["text_mean"] = self.text_mean_
        save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()},
                  str(out / "weights.safetensors"))
        meta = {"format": FORMAT, "params": self.get_params(), "dim": self.dim_,
                "target_mean": self.target_mean_ if hasattr(self, "target_mean_") else 0.0,
                "target_std": self.target_std_ if hasattr(self, "target_std_") else 1.0,
                "n_epochs": self.n_epochs_,
                "validation_scores": self.validation_scores_}
        (out / "diagnoser.json").write_text(json.dumps(meta, indent=2))
        return out

    @classmethod
    def load(cls, path: str | Path, *, device: str | None = None) -> "LossDiagnoser":
        """Read a diagnoser written by `save` (no code is executed: JSON + safetensors)."""
        src = Path(path)
        meta_file, weights_file = src / "diagnoser.json", src / "weights.safetensors"
        for f in (meta_file, weights_file):
            if not f.is_file():
                raise NotFoundError(f"no saved diagnoser at {src}: {f.name} is missing; pass the "
                                    f"directory that LossDiagnoser.save() wrote")
        try:
            meta = json.loads(meta_file.read_text())
            if not isinstance(meta, dict) or meta.get("format") != FORMAT:
                raise ValueError(f"format is not {FORMAT}")
            params = dict(meta["params"])
            params["device"] = device
            self = cls(**params)
            self._check_params()
            self.dim_ = check_positive_int(meta["dim"], "dim")
            # Sizes against the header first: nothing is allocated for a tampered diagnoser.json.
            check_saved_shapes(weights_file, self.n_members, self.dim_, self.arch, self.hidden)
            tensors = load_file(str(weights_file))
            check_saved_vectors(tensors, src)
            self.target_mean_ = float(meta["target_mean"])
            self.target_std_ = float(meta["target_std"])
            if not (math.isfinite(self.target_mean_) and math.isfinite(self.target_std_)
                    and self.target_std_ > 0):
                raise ValueError("target_mean/target_std must be finite and target_std positive")
            self.n_epochs_ = int(meta["n_epochs"])
            scores = meta.get("validation_scores")
            self.validation_scores_ = None if scores is None else [float(v) for v in scores]
            self.data_mean_ = tensors["data_mean"]
            self.text_mean_ = tensors.get("text_mean")
            self.member_center_ = tensors["member_center"]
            self.member_scale_ = tensors["member_scale"]
        except (ValueError, OSError, KeyError, TypeError, SafetensorError) as exc:
            raise WeightsError(f"saved diagnoser at {src} is unreadable or corrupt ({exc}); "
                               f"save it again from the fitted diagnoser") from exc
        self.device_ = resolve_device(device)
        heads = MemberHeads(self.n_members, self.dim_, arch=self.arch, hidden=self.hidden)
        params_list = list(heads.parameters())
        with torch.no_grad():
            for i, p in enumerate(params_list):
                saved = tensors.get(f"param.{i}")
                if saved is None or tuple(saved.shape) != tuple(p.shape):
                    raise WeightsError(f"{weights_file} does not match its diagnoser.json "
                                       f"(tensor param.{i}); save the diagnoser again")
                p.copy_(torch.from_numpy(saved))
        self.heads_ = heads.to(self.device_).eval()
        return self
