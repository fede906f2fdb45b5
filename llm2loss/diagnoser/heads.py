"""K small scoring heads (linear or 2-layer MLP) held as ONE batched torch module.

Every weight carries a leading member axis, so the K members of an ensemble run in one
`torch.baddbmm` per layer instead of K separate small matmuls: the members are trained together,
each from its own random initialisation (its own seeded generator), and each sees its own data
order (the trainer gathers a (K, batch, dim) tensor with per-member indices).

Inputs are expected L2-normalised; the head multiplies them by sqrt(dim) so that each coordinate
has roughly unit scale, which keeps the usual fan-in initialisation well conditioned (a unit vector
in 512 dims has coordinates around 0.044, which would otherwise make the first layer start almost
dead and train slowly).
"""

from __future__ import annotations

import math

import torch
from torch import nn

ARCHS = ("linear", "mlp")


def _uniform(shape: tuple[int, ...], bound: float, generator: torch.Generator) -> torch.Tensor:
    """Uniform(-bound, bound) samples drawn from `generator` (the nn.Linear default scheme)."""
    return (torch.rand(shape, generator=generator) * 2.0 - 1.0) * bound


class MemberHeads(nn.Module):
    """`n_members` independent heads mapping (.., dim) embeddings to one score each.

    Parameters
    ----------
    n_members: number of ensemble members K.
    dim: embedding dimension.
    arch: "linear" (score = w.x + b) or "mlp" (Linear -> GELU -> Linear, `hidden` units).
    hidden: width of the MLP's hidden layer (ignored for "linear").
    seed: base seed; member k is initialised from a generator seeded with `seed + k`, so a
        member's initial weights do not depend on how many other members there are.
    """

    def __init__(self, n_members: int, dim: int, *, arch: str = "mlp", hidden: int = 256,
                 seed: int = 0) -> None:
        super().__init__()
        if arch not in ARCHS:
            raise ValueError(f"unknown arch {arch!r}: choose one of {', '.join(ARCHS)}")
        self.n_members = n_members
        self.dim = dim
        self.arch = arch
        self.hidden = hidden
        self.input_scale = math.sqrt(dim)
        widths = [dim, hidden, 1] if arch == "mlp" else [dim, 1]
        weights: list[list[torch.Tensor]] = [[] for _ in range(len(widths) - 1)]
        biases: list[list[torch.Tensor]] = [[] for _ in range(len(widths) - 1)]
        for k in range(n_members):
            g = torch.Generator().manual_seed(int(seed) * 1009 + k)
            for layer, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
                bound = 1.0 / math.sqrt(fan_in)
                weights[layer].append(_uniform((fan_in, fan_out), bound, g))
                biases[layer].append(_uniform((1, fan_out), bound, g))
        self.weights = nn.ParameterList(nn.Parameter(torch.stack(w)) for w in weights)
        self.biases = nn.ParameterList(nn.Parameter(torch.stack(b)) for b in biases)

    def forward(self, x: torch.Tensor, row_scale: torch.Tensor | None = None) -> torch.Tensor:
        """Scores of each member.

        `x` is either (K, batch, dim), member k scoring its own rows x[k] (training), or
        (batch, dim), every member scoring the same rows (prediction). `row_scale` (batch,), 2-D
        `x` only: each row is scored as if multiplied by it first (an L2 normalisation folded
        into the first layer, which is linear). Returns (K, batch).
        """
        if x.dim() == 2:
            return self._forward_shared(x, row_scale)
        if row_scale is not None:
            raise ValueError("row_scale is only supported for 2-D input (rows shared by members)")
        h = x * self.input_scale
        last = len(self.weights) - 1
        for layer, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = torch.baddbmm(b, h, w)
            if layer < last:
                h = nn.functional.gelu(h)
        return h.squeeze(-1)

    def _forward_shared(self, x: torch.Tensor, row_scale: torch.Tensor | None) -> torch.Tensor:
        """Prediction path: every member scores the same rows, as few large GEMMs as possible.

        Layer 0 is one (n, dim) @ (dim, K * width) GEMM with the input scale folded into the
        (small) weight matrix and the bias fused in; later layers multiply by a block-diagonal
        (K * fan_in, K * fan_out) matrix, so activations stay one contiguous (n, K * width)
        array (elementwise GELU on it runs faster than on a per-member transposed view).
        """
        k = self.n_members
        h = x
        last = len(self.weights) - 1
        for layer, (w, b) in enumerate(zip(self.weights, self.biases)):
            if layer == 0:
                flat = w.permute(1, 0, 2).reshape(w.shape[1], -1) * self.input_scale
            else:
                flat = torch.block_diag(*w.unbind(0))
            bias = b.permute(1, 0, 2).reshape(1, -1)
            if layer == 0 and row_scale is not None:
                h = torch.addcmul(bias, h @ flat, row_scale[:, None])
            else:
                h = torch.addmm(bias, h, flat)
            if layer < last:
                h = nn.functional.gelu(h)
        return h.view(-1, k, self.weights[-1].shape[-1]).transpose(0, 1).squeeze(-1)

    def member_state(self, k: int) -> list[torch.Tensor]:
        """Copies of member k's parameters (used to keep each member's best early-stop state)."""
        return [p[k].detach().clone() for p in self.parameters()]

    @torch.no_grad()
    def load_member_state(self, k: int, state: list[torch.Tensor]) -> None:
        """Write member k's parameters back from `member_state(k)`."""
        for p, saved in zip(self.parameters(), state):
            p[k].copy_(saved)
