"""Fitting a LossDiagnoser: training targets, the batched training loop, early stopping, calibration.

All K members train together in one batched module (`heads.MemberHeads`), each from its own
seeded initialisation, in its own data order (and, with `bootstrap=True`, on its own resample).
A held-out slice of the training rows is scored after every epoch; each member keeps its best
epoch, and training stops once every member has gone `patience` epochs without improving.
Minibatches are gathered from the one normalised copy of the training rows through indices, so
no shuffled copy is made. Rank members are then calibrated to one scale (mean 0, std 1 over the
training data) so that averaging them is meaningful, and the linear readout of text queries is
fitted when it applies (`readout`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from llm2loss.diagnoser import readout
from llm2loss.diagnoser.checks import check_training_targets, check_vector
from llm2loss.diagnoser.heads import MemberHeads
from llm2loss.diagnoser.objectives import (rank_loss, sample_negatives, slog, training_loss,
                                           validation_criterion)
from llm2loss.diagnoser.scoring import raw_scores
from llm2loss.errors import DataError

if TYPE_CHECKING:
    from llm2loss.diagnoser.estimator import LossDiagnoser

__all__ = ["Anchor", "calibrate", "train_heads", "training_targets"]

_Moments = tuple[torch.Tensor, torch.Tensor]
#: (phrase rows as the heads see them, target scores that order them, weight): `phrase_anchor`
Anchor = tuple[np.ndarray, np.ndarray, float]


def training_targets(d: LossDiagnoser, loss: Any, n: int) -> np.ndarray:
    """Training targets: raw losses (rank), standardised slog losses (regress), ones
    (familiarity); sets `target_mean_`/`target_std_` on `d` for the loss objectives."""
    if d.objective == "familiarity":
        return np.ones(n, dtype=np.float32)
    if loss is None:
        raise DataError(f"objective {d.objective!r} needs the per-sample loss: call "
                        f"fit(X, loss) (only 'familiarity' fits on X alone)")
    y = check_vector(loss, "loss", length=n)
    if np.ptp(y) == 0:
        raise DataError(f"loss is constant ({y[0]!r}) so there is nothing to "
                        f"{d.objective}; check that per-sample losses were computed")
    if d.objective == "rank":
        d.target_mean_, d.target_std_ = 0.0, 1.0
        with np.errstate(over="ignore"):  # overflow is reported just below
            return check_training_targets(y.astype(np.float32), y, d.objective)
    t = slog(y)
    d.target_mean_, d.target_std_ = float(t.mean()), float(t.std())
    return check_training_targets(((t - d.target_mean_) / d.target_std_).astype(np.float32),
                                  y, d.objective)


def _split(d: LossDiagnoser, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, validation rows) in a seeded order; no validation rows without early stopping."""
    order = rng.permutation(n)
    if not d.early_stopping:
        return order, order[:0]
    n_val = min(max(int(round(d.validation_fraction * n)), 5), n // 2)
    return order[n_val:], order[:n_val]


def train_heads(d: LossDiagnoser, Z: np.ndarray, targets: np.ndarray,
                anchor: Anchor | None = None) -> MemberHeads:
    """Train all members together; return the heads with each member's best state. Sets
    `n_epochs_` and `validation_scores_` on `d`. With `anchor`, every step also adds its weight
    times the rank loss of the members' scores of the anchor's phrases against its targets."""
    K, dev = d.n_members, d.device_
    rng = np.random.default_rng(d.random_state)
    train_idx, val_idx = _split(d, len(Z), rng)
    gen = torch.Generator().manual_seed(int(d.random_state))
    heads = MemberHeads(K, Z.shape[1], arch=d.arch, hidden=d.hidden, seed=d.random_state).to(dev)
    lr = d.lr if d.lr is not None else (1e-3 if d.arch == "mlp" else 3e-3)
    opt = torch.optim.AdamW(heads.parameters(), lr=lr, weight_decay=d.weight_decay)
    # Minibatches are gathered from Z through the train indices: no shuffled copy of the
    # training rows is made (on CPU; a GPU holds one copy of Z in its own memory).
    Zt = torch.from_numpy(Z).to(dev)
    train_rows = torch.from_numpy(train_idx).to(dev)
    y_all = torch.from_numpy(targets).to(dev)
    moments = (Zt.mean(dim=0), Zt.std(dim=0))
    val = _validation_set(d, Z, targets, val_idx, moments, gen)
    n_tr = len(train_idx)
    n_batches = max(1, math.ceil(n_tr / d.batch_size))
    bounds = np.linspace(0, n_tr, n_batches + 1).round().astype(int)
    best = torch.full((K,), float("inf"))
    best_state = [heads.member_state(k) for k in range(K)]
    stale = torch.zeros(K, dtype=torch.long)
    d.n_epochs_ = 0
    member_rows = _member_rows(d, train_rows, K, gen)  # (K, n_tr) rows each member sees
    if anchor is not None:
        phrase_rows = torch.from_numpy(anchor[0]).to(dev).unsqueeze(0).expand(K, -1, -1)
        phrase_targets = torch.from_numpy(anchor[1]).to(dev).unsqueeze(0).expand(K, -1)
    for _epoch in range(d.max_epochs):
        heads.train()
        perms = torch.argsort(torch.rand(K, n_tr, generator=gen), dim=1).to(dev)
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            idx = torch.gather(member_rows, 1, perms[:, lo:hi])
            xb, yb = Zt[idx], y_all[idx]
            if d.objective == "familiarity":
                xb, yb = _with_negatives(d, xb, moments, gen)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=d.mixed_precision):
                scores = heads(xb)
            loss = training_loss(d.objective, scores.float(), yb, d.pair_group)
            if anchor is not None:
                loss = loss + anchor[2] * rank_loss(heads(phrase_rows).float(), phrase_targets)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        d.n_epochs_ += 1
        if val is None:
            continue
        crit = _criterion(d, heads, val).cpu()
        improved = crit < best - 1e-4
        for k in torch.nonzero(improved).flatten().tolist():
            best_state[k] = heads.member_state(k)
        best = torch.where(improved, crit, best)
        stale = torch.where(improved, torch.zeros_like(stale), stale + 1)
        if bool((stale >= d.patience).all()):
            break
    d.validation_scores_ = None
    if val is not None:
        for k in range(K):
            heads.load_member_state(k, best_state[k])
        d.validation_scores_ = (-best if d.objective == "rank" else best).tolist()
    heads.eval()
    return heads


def _member_rows(d: LossDiagnoser, train_rows: torch.Tensor, K: int,
                 gen: torch.Generator) -> torch.Tensor:
    """Each member's training rows, (K, n_tr): a bootstrap resample each, or all rows."""
    n_tr = len(train_rows)
    if not d.bootstrap:
        return train_rows.unsqueeze(0).expand(K, n_tr)
    draw = torch.randint(0, n_tr, (K, n_tr), generator=gen).to(train_rows.device)
    return train_rows[draw]


def _with_negatives(d: LossDiagnoser, xb: torch.Tensor, moments: _Moments,
                    gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Append one fresh negative per positive to each member's batch; labels 1 then 0."""
    K, b, dim = xb.shape
    neg = sample_negatives(d.negatives, K * b, dim=dim, mean=moments[0], std=moments[1],
                           generator=gen, device=xb.device).view(K, b, dim)
    labels = torch.cat([torch.ones(K, b), torch.zeros(K, b)], dim=1).to(xb.device)
    return torch.cat([xb, neg], dim=1), labels


def _validation_set(d: LossDiagnoser, Z: np.ndarray, targets: np.ndarray, val_idx: np.ndarray,
                    moments: _Moments, gen: torch.Generator
                    ) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The validation rows and their targets (ranks, targets, or data vs negatives labels)."""
    if len(val_idx) == 0:
        return None
    dev = d.device_
    xv = torch.from_numpy(Z[val_idx]).to(dev)
    if d.objective == "rank":
        from scipy.stats import rankdata  # here: scipy.stats is slow to import, and only fit needs it

        yv = torch.from_numpy(rankdata(targets[val_idx]).astype(np.float32)).to(dev)
    elif d.objective == "regress":
        yv = torch.from_numpy(targets[val_idx]).to(dev)
    else:
        neg = sample_negatives(d.negatives, len(val_idx), dim=Z.shape[1],
                               mean=moments[0], std=moments[1], generator=gen, device=dev)
        xv = torch.cat([xv, neg])
        yv = torch.cat([torch.ones(len(val_idx)), torch.zeros(len(val_idx))]).to(dev)
    return xv, yv


@torch.no_grad()
def _criterion(d: LossDiagnoser, heads: MemberHeads,
               val: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    heads.eval()
    return validation_criterion(d.objective, heads(val[0]), val[1])


def calibrate(d: LossDiagnoser, Z: np.ndarray) -> None:
    """Per-member centre/scale so that rank members share one scale (package doc), then the
    linear readout of text queries when `d.text_readout` resolves to it (`readout`). The raw
    scores of the training rows are computed once for both."""
    K = d.n_members
    d.text_readout_ = readout.resolve(d.text_readout, d.objective, d.arch, d.gap)
    linear = d.text_readout_ == "linear"
    raw = raw_scores(d, Z) if d.objective == "rank" or linear else None
    if d.objective == "rank":
        d.member_center_ = raw.mean(axis=1).astype(np.float32)
        d.member_scale_ = np.maximum(raw.std(axis=1), 1e-12).astype(np.float32)
    else:
        d.member_center_ = np.zeros(K, dtype=np.float32)
        d.member_scale_ = np.ones(K, dtype=np.float32)
    d.readout_weight_, d.readout_bias_ = readout.fit_linear(Z, raw) if linear else (None, None)
