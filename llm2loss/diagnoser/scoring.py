"""Scoring with a fitted LossDiagnoser: query rows in, member scores out, chunk by chunk.

A query is checked, then normalised (and, with gap="center", centred on the mean of its space)
one chunk at a time, so a query of millions of rows is never copied whole. A chunk is sized so
that its widest activation (rows x members x width x 4 bytes) stays below glibc's mmap threshold:
activations freed by one chunk are then reused from the heap by the next instead of being
mapped and page-faulted afresh (the measured effect is in benchmarks/RESULTS.md).

`space` says where a query row comes from: "data" (the embeddings the diagnoser was fitted on)
or "text" (phrase embeddings, which CLIP-like encoders place away from the data). Text rows are
scored with the heads, or with their linear readout when the diagnoser has one (`readout`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from llm2loss.diagnoser.checks import check_choice, check_matrix
from llm2loss.diagnoser.comparison import Comparison, p_higher
from llm2loss.diagnoser.objectives import inverse_slog
from llm2loss.diagnoser.readout import linear_scores
from llm2loss.diagnoser.rows import centre_in_place, inverse_norms, normalise
from llm2loss.diagnoser.rows import text_mean as rows_text_mean
from llm2loss.errors import DataError, NotFittedError

if TYPE_CHECKING:
    from llm2loss.diagnoser.estimator import LossDiagnoser

__all__ = ["Comparison", "SPACES", "compare", "member_outputs", "p_higher"]

#: Where a query row comes from: the fitted data's embedding space or the text (phrase) space.
SPACES = ("data", "text")
_PREDICT_CHUNK = 65536  # rows per chunk at most
#: Bytes of one chunk's widest activation, below glibc's mmap threshold (32 MiB at most).
_ACTIVATION_BYTES = 8 << 20


def check_fitted(d: LossDiagnoser) -> None:
    """NotFittedError unless `d` was fitted or loaded."""
    if not hasattr(d, "heads_"):
        raise NotFittedError("this LossDiagnoser is not fitted yet: call fit(X, loss) or "
                             "LossDiagnoser.load(path) before predicting")


def member_outputs(d: LossDiagnoser, X: Any, space: str) -> np.ndarray:
    """Every member's output (K, n) for query rows `X` from `space` (module doc)."""
    return output(d, query_scores(d, *prepare(d, X, space), space=space))


def compare(d: LossDiagnoser, Xa: Any, Xb: Any, space: str) -> Comparison:
    """Row i of `Xa` against row i of `Xb` over the members (`LossDiagnoser.compare`)."""
    check_fitted(d)
    A = check_matrix(Xa, "Xa", dim=d.dim_)
    B = check_matrix(Xb, "Xb", dim=d.dim_)
    if A.shape[0] != B.shape[0]:
        raise DataError(f"Xa has {A.shape[0]} rows but Xb has {B.shape[0]}; compare() pairs "
                        f"row i of Xa with row i of Xb, so pass equally many rows")
    mean = None
    if d.gap == "center" and space == "text":
        mean = text_mean(d, np.concatenate([A, B]))
    ma = output(d, query_scores(d, *prepare(d, A, space, "Xa", mean), space=space))
    mb = output(d, query_scores(d, *prepare(d, B, space, "Xb", mean), space=space))
    diff = ma - mb
    return Comparison(p_higher=p_higher(diff), differences=diff,
                      quartiles=np.quantile(diff, [0.0, 0.25, 0.5, 0.75, 1.0], axis=0))


def prepare(d: LossDiagnoser, X: Any, space: str, name: str = "X",
            mean: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Checked query rows and the mean to centre them with after normalising (None for
    gap="none"). Normalising and centring happen chunk by chunk in `query_scores`."""
    check_fitted(d)
    check_choice(space, SPACES, "space")
    X = check_matrix(X, name, dim=d.dim_)
    if d.gap == "none":
        return X, None
    if space == "data":
        return X, d.data_mean_
    return X, text_mean(d, X) if mean is None else mean


def query_scores(d: LossDiagnoser, X: np.ndarray, centre: np.ndarray | None,
                 space: str = "data") -> np.ndarray:
    """Raw member scores (K, n) of checked query rows, normalised (and centred) per chunk: from the
    heads, or for text rows from the linear readout when `d` has one.

    Without centring, the L2 normalisation is folded into the first layer as a row scale
    (no normalised copy of the rows is made)."""
    if space == "text" and getattr(d, "readout_weight_", None) is not None:
        return readout_scores(d, X, centre)
    if centre is None:
        return raw_scores(d, X, scale=True)
    return raw_scores(d, X, lambda chunk: centre_in_place(normalise(chunk), centre))


def readout_scores(d: LossDiagnoser, X: np.ndarray, centre: np.ndarray | None) -> np.ndarray:
    """Raw member scores (K, n) of checked text rows under the linear readout, chunk by chunk."""
    out = np.empty((d.n_members, len(X)), dtype=np.float32)
    for lo in range(0, len(X), _PREDICT_CHUNK):
        rows = normalise(np.ascontiguousarray(X[lo:lo + _PREDICT_CHUNK]))
        if centre is not None:
            rows = centre_in_place(rows, centre)
        out[:, lo:lo + len(rows)] = linear_scores(rows, d.readout_weight_, d.readout_bias_)
    return out


def text_mean(d: LossDiagnoser, X: np.ndarray) -> np.ndarray:
    """`rows.text_mean` with this diagnoser's stored text-reference mean."""
    return rows_text_mean(d.text_mean_, X)


@torch.no_grad()
def raw_scores(d: LossDiagnoser, Z: np.ndarray,
               prepare_chunk: Callable[[np.ndarray], np.ndarray] | None = None, *,
               scale: bool = False) -> np.ndarray:
    """Raw member scores (K, n) of rows `Z`, in chunks (see `chunk_rows`). `prepare_chunk` (if
    given) maps each chunk first; `scale=True` scores each row as if L2-normalised (see
    `MemberHeads.forward`'s row_scale)."""
    d.heads_.eval()
    out = np.empty((d.n_members, len(Z)), dtype=np.float32)
    step = chunk_rows(d)
    for lo in range(0, len(Z), step):
        rows = np.ascontiguousarray(Z[lo:lo + step])
        if prepare_chunk is not None:
            rows = prepare_chunk(rows)
        row_scale = None
        if scale:
            rows, row_scale = inverse_norms(rows)
            row_scale = torch.from_numpy(row_scale).to(d.device_)
        if not rows.flags.writeable:  # e.g. a memory-mapped query: torch wants writeable
            rows = rows.copy()
        chunk = torch.from_numpy(rows).to(d.device_)
        out[:, lo:lo + len(rows)] = d.heads_(chunk, row_scale).float().cpu().numpy()
        del chunk, rows  # free this chunk before the next one is prepared
    return out


def chunk_rows(d: LossDiagnoser) -> int:
    """Rows per prediction chunk: as many as keep the hidden activations (rows x members x
    width) within `_ACTIVATION_BYTES`, between 1024 and `_PREDICT_CHUNK`. (The input rows
    of a chunk are usually a view of the query, not a new allocation.)"""
    width = d.n_members * (d.hidden if d.arch == "mlp" else 1) * 4
    return max(min(1024, _PREDICT_CHUNK), min(_PREDICT_CHUNK, _ACTIVATION_BYTES // width))


def output(d: LossDiagnoser, raw: np.ndarray) -> np.ndarray:
    """Member outputs from raw scores: standardised (rank), loss units (regress), logits."""
    z = (raw - d.member_center_[:, None]) / d.member_scale_[:, None]
    if d.objective == "regress":
        # in float64: losses up to ~1e308 (their slog is ~710) would overflow float32 here
        return inverse_slog(z.astype(np.float64) * d.target_std_ + d.target_mean_)
    return z.astype(np.float64)
