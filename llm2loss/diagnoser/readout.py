"""How a fitted LossDiagnoser scores text (phrase) rows: with its heads, or with their linear readout.

A phrase asks about the samples it describes: "are dark shapes harder than light ones" means the
mean loss of dark images against that of light ones. Applying an MLP head at the phrase's point
answers a different question, the head's value at one point, and f(mean of the rows) is not the
mean of f over them once f is curved (Jensen). With gap="center" the phrase rows come from
another tower and sit off the images' manifold, so that point value is an extrapolation, and it
moves the more the heads are trained on the images (benchmarks/RESULTS.md `## Image`).

The linear readout: after fitting, each member's raw scores on all the rows it was fitted on (as
the heads see them; the validation slice too, and the same rows for every member whatever its
bootstrap resample) are fitted by ridge least squares with an intercept, `scores ~ rows @ w + b`.
Text rows are then scored with (w, b). That is the member's function projected onto the linear
functions of the embedding over the data, in the ridge sense: for a linear head, its own weights
shrunk by the penalty; for an MLP, its best linear approximation where the images are. The ridge
penalty is `RIDGE` times the mean variance per dimension of the training rows, so a direction's weight is shrunk the more, the less the images
vary along it (var / (var + penalty) of the slope there): the data say little about the loss
along such directions, so a phrase's component along them moves its score little.
Data rows are always scored with the heads themselves.

`text_readout`: "heads" (the paper: heads at the phrase point), "linear", or "auto" (the default):
"linear" for the loss objectives with an MLP head and gap="center" (images queried with text),
"heads" otherwise. Measured (benchmarks/RESULTS.md `## Image` and the notes there): on the image
benchmark's three audit sets (the third drawn after it was chosen) it kept every attribute sign of
heads trained to early stopping's end, which the heads readout turned; on the text benchmarks (gap="none", a script) it did not help and
lowered SpamAssassin v1's attribute Kendall, so "auto" leaves text as it was.

Torch-free: the torch estimator and the numpy scorer share it.
"""

from __future__ import annotations

import numpy as np

__all__ = ["READOUTS", "RIDGE", "fit_linear", "fitted_readout", "linear_scores", "resolve"]

#: `text_readout` choices.
READOUTS = ("auto", "heads", "linear")
#: Ridge penalty of the linear readout, as a share of the training rows' mean variance per dimension.
#: Picked between 0.03 and 0.3, which both kept every attribute sign of the image benchmark's two
#: audit sets on 4 of 4 seeds, while 0.003 lost one on 3 seeds of the second (a script, 2026-12-01;
#: so both sets were seen when it was picked).
RIDGE = 0.1
_CHUNK = 65536  # rows per step of the Gram sums


def resolve(text_readout: str, objective: str, arch: str, gap: str) -> str:
    """The readout text rows get: "heads" or "linear" (module doc for "auto")."""
    if text_readout != "auto":
        return text_readout
    linear = gap == "center" and arch == "mlp" and objective != "familiarity"
    return "linear" if linear else "heads"


def fitted_readout(meta: dict, params: object) -> str:
    """The readout a saved diagnoser's fit read text with: diagnoser.json's `fitted_text_readout`,
    or for a file saved before it, its parameters resolved (a file without `text_readout` at all
    predates readouts: "heads"). ValueError for anything but "heads" or "linear", and for a
    linear readout of a familiarity head."""
    fitted = meta.get("fitted_text_readout")
    if fitted is None:
        fitted = resolve(getattr(params, "text_readout", "heads"), params.objective,  # type: ignore[attr-defined]
                         params.arch, params.gap)  # type: ignore[attr-defined]
    if fitted not in ("heads", "linear"):
        raise ValueError(f"fitted_text_readout {fitted!r} is not 'heads' or 'linear'")
    if fitted == "linear" and params.objective == "familiarity":  # type: ignore[attr-defined]
        raise ValueError("a familiarity head has no linear readout")
    return str(fitted)


def fit_linear(rows: np.ndarray, raw: np.ndarray, ridge: float = RIDGE) -> tuple[np.ndarray, np.ndarray]:
    """Per-member ridge fit of raw scores `raw` (K, n) on `rows` (n, dim), intercept unpenalised:
    (weights (K, dim), biases (K,)) in float32. The (dim, dim) Gram matrix is summed in float64
    over chunks of rows, so no centred or widened copy of all the rows is made."""
    n, dim = rows.shape
    gram = np.zeros((dim, dim))
    cross = np.zeros((dim, raw.shape[0]))
    total = np.zeros(dim)
    for lo in range(0, n, _CHUNK):
        chunk = rows[lo:lo + _CHUNK].astype(np.float64)
        gram += chunk.T @ chunk
        cross += chunk.T @ raw[:, lo:lo + _CHUNK].astype(np.float64).T
        total += chunk.sum(axis=0)
    mean = total / n
    raw_mean = raw.mean(axis=1, dtype=np.float64)
    gram -= n * np.outer(mean, mean)
    cross -= n * np.outer(mean, raw_mean)
    penalty = ridge * max(float(np.trace(gram)) / dim, 1e-12)
    weights = np.linalg.solve(gram + penalty * np.eye(dim), cross)  # (dim, K)
    biases = raw_mean - mean @ weights
    return weights.T.astype(np.float32), biases.astype(np.float32)


def linear_scores(rows: np.ndarray, weights: np.ndarray, biases: np.ndarray) -> np.ndarray:
    """Raw member scores (K, n) of prepared rows under the linear readout."""
    return (weights @ rows.T + biases[:, None]).astype(np.float32, copy=False)
