"""The batched heads and the training objectives, checked against plain per-member torch code."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from llm2loss.diagnoser.heads import MemberHeads
from llm2loss.diagnoser.objectives import (auroc_per_member, inverse_slog, rank_loss, sample_negatives,
                                 slog, spearman_per_member, training_loss, validation_criterion)


@pytest.mark.parametrize("arch", ["linear", "mlp"])
def test_shared_rows_equal_per_member_rows(arch):
    heads = MemberHeads(4, 16, arch=arch, hidden=8, seed=1)
    x = torch.randn(10, 16)
    shared = heads(x)
    stacked = heads(x.unsqueeze(0).expand(4, -1, -1).contiguous())
    assert shared.shape == (4, 10)
    torch.testing.assert_close(shared, stacked, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("arch", ["linear", "mlp"])
def test_row_scale_equals_scaling_the_rows_first(arch):
    heads = MemberHeads(3, 16, arch=arch, hidden=8, seed=2)
    x = torch.randn(7, 16)
    scale = torch.rand(7) + 0.5
    torch.testing.assert_close(heads(x, scale), heads(x * scale[:, None]), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="2-D"):
        heads(x.unsqueeze(0).expand(3, -1, -1), scale)


def test_member_k_equals_a_plain_mlp():
    heads = MemberHeads(3, 16, arch="mlp", hidden=8, seed=0)
    x = torch.randn(5, 16)
    w1, w2 = heads.weights
    b1, b2 = heads.biases
    k = 2
    h = F.gelu((x * heads.input_scale) @ w1[k] + b1[k])
    torch.testing.assert_close(heads(x)[k], (h @ w2[k] + b2[k]).squeeze(-1))


def test_member_init_independent_of_ensemble_size():
    small, big = MemberHeads(2, 16, seed=7), MemberHeads(5, 16, seed=7)
    x = torch.randn(6, 16)
    torch.testing.assert_close(small(x), big(x)[:2])
    assert not torch.allclose(big(x)[0], big(x)[1])


def test_members_get_independent_gradients():
    heads = MemberHeads(3, 8, arch="mlp", hidden=4)
    x = torch.randn(3, 12, 8)
    y = torch.rand(3, 12)
    rank_loss(heads(x)[:1], y[:1]).backward()
    for w in heads.weights:  # (the last bias gets no gradient: pair differences cancel it)
        assert w.grad[0].abs().sum() > 0
    for p in heads.parameters():
        assert p.grad[1:].abs().sum() == 0


def test_member_state_round_trip():
    heads = MemberHeads(2, 8)
    state = heads.member_state(1)
    x = torch.randn(4, 8)
    before = heads(x)[1].detach().clone()
    with torch.no_grad():
        for p in heads.parameters():
            p.add_(1.0)
    heads.load_member_state(1, state)
    torch.testing.assert_close(heads(x)[1], before)


def test_unknown_arch():
    with pytest.raises(ValueError, match="linear, mlp"):
        MemberHeads(2, 8, arch="cnn")


def test_rank_loss_is_bce_over_non_tied_pairs():
    scores = torch.randn(2, 6)
    targets = torch.tensor([[0.1, 0.5, 0.5, 2.0, 0.0, 1.0], [3.0, 1.0, 2.0, 0.5, 0.5, 0.5]])
    expected = 0.0
    for k in range(2):
        terms = []
        for i, j in itertools.permutations(range(6), 2):
            if targets[k, i] == targets[k, j]:
                continue
            label = torch.tensor(float(targets[k, i] > targets[k, j]))
            terms.append(F.binary_cross_entropy_with_logits(scores[k, i] - scores[k, j], label))
        expected += torch.stack(terms).mean()
    torch.testing.assert_close(rank_loss(scores, targets), expected)


def test_grouped_rank_loss_is_the_mean_over_groups_of_the_all_pairs_loss():
    """pair_group g: pairs only inside consecutive groups of g rows; each member's loss is the
    mean over its groups weighted by their rows (checked against pairs enumerated by hand)."""
    torch.manual_seed(0)
    scores, targets = torch.randn(3, 23), torch.randn(3, 23)
    groups = [(0, 8), (8, 16), (16, 23)]

    def group_mean(k: int, a: int, b: int) -> torch.Tensor:
        terms = [F.binary_cross_entropy_with_logits(scores[k, i] - scores[k, j], torch.tensor(1.0))
                 for i, j in itertools.permutations(range(a, b), 2) if targets[k, i] > targets[k, j]]
        return torch.stack(terms).mean()

    expected = sum((b - a) * group_mean(k, a, b) for k in range(3) for a, b in groups) / 23
    torch.testing.assert_close(rank_loss(scores, targets, group=8), expected)
    # a group as large as the minibatch is all pairs; a last group of one row has no pair
    torch.testing.assert_close(rank_loss(scores, targets, group=23), rank_loss(scores, targets))
    torch.testing.assert_close(rank_loss(scores[:, :17], targets[:, :17], group=8),
                               16 * rank_loss(scores[:, :16], targets[:, :16], group=8) / 17)
    # the gradient flows to every row, grouped or not
    scores.requires_grad_(True)
    rank_loss(scores, targets, group=8).backward()
    assert bool((scores.grad != 0).all())


def test_rank_loss_prefers_the_right_order():
    targets = torch.arange(8.0).unsqueeze(0)
    assert rank_loss(targets, targets) < rank_loss(-targets, targets)
    # all ties: no pairs, no loss
    assert rank_loss(torch.randn(1, 5), torch.ones(1, 5)) == 0


def test_training_and_validation_losses_dispatch():
    s, y = torch.randn(2, 6), torch.rand(6)
    torch.testing.assert_close(training_loss("regress", s, y.expand(2, 6)),
                               ((s - y) ** 2).mean(dim=1).sum())
    torch.testing.assert_close(validation_criterion("regress", s, y), ((s - y) ** 2).mean(dim=1))
    with pytest.raises(ValueError, match="rank, regress, familiarity"):
        training_loss("hinge", s, y)
    with pytest.raises(ValueError, match="rank, regress, familiarity"):
        validation_criterion("hinge", s, y)


def test_spearman_and_auroc_match_scipy_and_sklearn():
    from scipy.stats import spearmanr
    from sklearn.metrics import roc_auc_score
    rng = np.random.default_rng(0)
    s = rng.standard_normal((3, 50)).astype(np.float32)
    y = rng.standard_normal(50)
    ranks = torch.from_numpy(np.argsort(np.argsort(y)).astype(np.float32))
    got = spearman_per_member(torch.from_numpy(s), ranks).numpy()
    np.testing.assert_allclose(got, [spearmanr(row, y)[0] for row in s], rtol=1e-4)
    labels = (y > 0).astype(np.float32)
    got = auroc_per_member(torch.from_numpy(s), torch.from_numpy(labels)).numpy()
    np.testing.assert_allclose(got, [roc_auc_score(labels, row) for row in s], rtol=1e-5)


def test_slog_round_trip_and_monotone():
    x = np.array([-100.0, -1.0, 0.0, 0.5, 3.0, 1e4])
    np.testing.assert_allclose(inverse_slog(slog(x)), x, rtol=1e-12)
    assert (np.diff(slog(x)) > 0).all()
    assert slog(np.array([1e4]))[0] < 10  # the heavy tail is compressed


@pytest.mark.parametrize("kind", ["random", "moments"])
def test_negatives_are_unit_vectors(kind):
    g = torch.Generator().manual_seed(0)
    mean, std = torch.full((8,), 0.3), torch.full((8,), 0.05)
    z = sample_negatives(kind, 100, dim=8, mean=mean, std=std, generator=g,
                         device=torch.device("cpu"))
    torch.testing.assert_close(z.norm(dim=1), torch.ones(100))
    if kind == "moments":  # they sit in the data's cone, random ones do not
        assert (z @ F.normalize(mean, dim=0)).min() > 0.5


def test_unknown_negatives():
    with pytest.raises(ValueError, match="random, moments"):
        sample_negatives("hard", 2, dim=3, mean=torch.zeros(3), std=torch.ones(3),
                         generator=torch.Generator(), device=torch.device("cpu"))
