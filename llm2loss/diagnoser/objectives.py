"""The three training objectives of a loss diagnoser: rank, regress and familiarity.

Each objective is a pair of pure torch functions on member scores of shape (K, batch): a training
loss (summed over members, so every member gets the gradient it would get if trained alone) and a
per-member validation criterion used for early stopping (lower is better).

- rank (the paper's ranker): pairs (i, j) formed inside each minibatch, BCE on s_i - s_j against
  [l_i > l_j], ties left out. Every unordered non-tied pair is used once, oriented so that
  l_i > l_j; BCE against label 1 and BCE on the mirrored pair against label 0 are the same number,
  so this equals BCE over all ordered pairs at half the cost. With a minibatch of B rows an epoch
  costs n/B * B^2 = n * B pair terms: linear in n. Validation: minus the Spearman correlation.
- regress: MSE against a standardised *transformed* loss. Per-sample losses of classifiers are
  heavy-tailed (most near 0, a few very large cross-entropies), and plain MSE lets those few
  dominate the fit. We use the signed log, slog(l) = sign(l) * log1p(|l|): monotone (so orderings
  are kept), invertible (predictions go back to loss units), defined for negative losses too,
  and it turns a power-law tail into an exponential one. Then subtract the mean, divide by the std.
- familiarity: binary classifier, data embeddings (label 1) vs generated negatives (label 0).
  `negatives="random"` draws uniform random unit vectors (the paper); `negatives="moments"` draws
  Gaussian vectors with the data's own mean and per-coordinate std, renormalised: they sit in the
  same cone as the data, so the classifier must learn the data's structure rather than only "is
  this near the data mean". Which one is the default, and why, is stated in
  `llm2loss.diagnoser.LossDiagnoser` (measured by benchmarks/tune_core.py).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

OBJECTIVES = ("rank", "regress", "familiarity")
NEGATIVES = ("random", "moments")


def _all_pairs_loss(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Sum over rows of each row's mean RankNet loss over its non-tied pairs; (R, B) inputs."""
    with torch.no_grad():  # pair weights: 1 / (row's pair count) where l_i > l_j, else 0
        higher = (targets.unsqueeze(2) > targets.unsqueeze(1)).to(scores.dtype)
        weights = higher / higher.sum(dim=(1, 2), keepdim=True).clamp_min(1.0)
    # softplus(s_j - s_i) = BCE(sigmoid(s_i - s_j), 1); one weighted sum over (R, B, B)
    return (F.softplus(scores.unsqueeze(1) - scores.unsqueeze(2)) * weights).sum()


def rank_loss(scores: torch.Tensor, targets: torch.Tensor, group: int | None = None) -> torch.Tensor:
    """RankNet/BCE loss over the non-tied pairs inside each member's minibatch.

    scores, targets: (K, B). Returns the sum over members of each member's mean pair loss
    (members with no non-tied pair contribute 0). With `group`, pairs are formed only inside
    consecutive groups of `group` rows (the minibatch is already in random order, so this is a
    random sample of its pairs): the cost per row falls from B to `group` pair terms, and each
    member's loss is the mean over its groups weighted by their rows (a last, shorter group
    weighs less; one of a single row, with no pair, adds nothing and dilutes nothing much).
    """
    B = scores.shape[1]
    if group is None or group >= B:
        return _all_pairs_loss(scores, targets)
    full = (B // group) * group
    loss = group * _all_pairs_loss(scores[:, :full].reshape(-1, group), targets[:, :full].reshape(-1, group))
    if full < B:
        loss = loss + (B - full) * _all_pairs_loss(scores[:, full:], targets[:, full:])
    return loss / B


def regress_loss(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """MSE per member against the (already transformed and standardised) targets, summed over K."""
    return ((scores - targets) ** 2).mean(dim=1).sum()


def familiarity_loss(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """BCE with logits per member (labels 1 = data, 0 = negative), summed over members."""
    return F.binary_cross_entropy_with_logits(scores, labels, reduction="none").mean(dim=1).sum()


def training_loss(objective: str, scores: torch.Tensor, targets: torch.Tensor,
                  pair_group: int | None = None) -> torch.Tensor:
    """Dispatch to the training loss of `objective` (`pair_group`: see `rank_loss`'s `group`)."""
    if objective == "rank":
        return rank_loss(scores, targets, pair_group)
    if objective == "regress":
        return regress_loss(scores, targets)
    if objective == "familiarity":
        return familiarity_loss(scores, targets)
    raise ValueError(f"unknown objective {objective!r}: choose one of {', '.join(OBJECTIVES)}")


def _ranks(x: torch.Tensor) -> torch.Tensor:
    """Ranks along the last axis (0..n-1; ties broken by position)."""
    return torch.argsort(torch.argsort(x, dim=-1), dim=-1).to(torch.float32)


def spearman_per_member(scores: torch.Tensor, target_ranks: torch.Tensor) -> torch.Tensor:
    """Spearman correlation of each member's scores (K, n) with precomputed target ranks (n,)."""
    r = _ranks(scores)
    r = r - r.mean(dim=1, keepdim=True)
    t = target_ranks - target_ranks.mean()
    return (r * t).sum(dim=1) / (r.norm(dim=1) * t.norm()).clamp_min(1e-12)


def auroc_per_member(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """AUROC of each member's scores (K, n) for binary labels (n,) (Mann-Whitney U / n1 n0)."""
    r = _ranks(scores) + 1.0
    pos = labels > 0.5
    n1, n0 = pos.sum(), (~pos).sum()
    return ((r * pos).sum(dim=1) - n1 * (n1 + 1) / 2) / (n1 * n0)


def validation_criterion(objective: str, scores: torch.Tensor, targets: torch.Tensor
                         ) -> torch.Tensor:
    """Per-member early-stopping criterion (K,), lower is better.

    rank: -Spearman (targets are the ranks of the held-out losses); regress: MSE;
    familiarity: 1 - AUROC of held-out data vs a fixed set of negatives. (Not BCE: data and
    random vectors are separable, so held-out BCE keeps shrinking as the logits grow and would
    never trigger early stopping; AUROC saturates once the two are told apart.)
    """
    if objective == "rank":
        return -spearman_per_member(scores, targets)
    if objective == "regress":
        return ((scores - targets) ** 2).mean(dim=1)
    if objective == "familiarity":
        return 1.0 - auroc_per_member(scores, targets)
    raise ValueError(f"unknown objective {objective!r}: choose one of {', '.join(OBJECTIVES)}")


def slog(x: np.ndarray) -> np.ndarray:
    """Signed log: sign(x) * log1p(|x|), the regressor's target transform (see module doc)."""
    return np.sign(x) * np.log1p(np.abs(x))


def inverse_slog(y: np.ndarray) -> np.ndarray:
    """Inverse of `slog`: sign(y) * expm1(|y|)."""
    return np.sign(y) * np.expm1(np.abs(y))


def sample_negatives(kind: str, n: int, *, dim: int, mean: torch.Tensor, std: torch.Tensor,
                     generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """`n` unit-norm negatives for the familiarity objective (see the module doc for the kinds).

    mean, std: the per-coordinate mean and std of the (normalised) training data, used by
    "moments".
    """
    z = torch.randn((n, dim), generator=generator).to(device)
    if kind == "random":
        pass
    elif kind == "moments":
        z = z * std + mean
    else:
        raise ValueError(f"unknown negatives {kind!r}: choose one of {', '.join(NEGATIVES)}")
    return F.normalize(z, dim=1)
