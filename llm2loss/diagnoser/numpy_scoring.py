"""Saved loss diagnosers scored in numpy: the answers of `LossDiagnoser` without importing torch.

A finished audit's diagnosers are small (K members of a linear or Linear-GELU-Linear head over a
few hundred dimensions), and a cold `llm2loss query` scores one or a few phrases with them; the
torch import alone costs more than the rest of the command. `NumpyDiagnoser.load(path)` reads the
directory `LossDiagnoser.save` wrote (`diagnoser.json` + `weights.safetensors`) and computes the
same outputs as `LossDiagnoser.predict_members` / `predict` / `compare` (in float32 like the torch
forward; tests/core/test_diagnoser_numpy_scoring.py checks the two agree to ~1e-5 for every head,
objective and gap).

`Comparison`, `p_higher` (`comparison`) and the row geometry (`rows`) are the torch-free rooms
of this package, shared with the torch forward.

What is covered: format `llm2loss-diagnoser/1`, arch "linear" or "mlp", objective "rank",
"regress" or "familiarity", gap "none" or "center", text read out by the heads or linearly
(`readout`; a diagnoser.json without `text_readout` predates it and means "heads"), float32
tensors. Anything else, and anything
that fails a check, raises `NotCovered` with the reason: the caller then loads the diagnoser with
`LossDiagnoser.load` (torch), which either covers it or reports the problem in its own words.
So a saved diagnoser is never answered wrongly here, only more slowly there.

The files come from a store others can write: diagnoser.json is size-limited and its fields are
type-checked, the safetensors header is checked against it before any tensor is read
(`checks.check_saved_shapes`), and every tensor must be finite float32 of its shape.
Loading runs no code.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from llm2loss.blas import one_blas_thread
from llm2loss.diagnoser.checks import check_positive_int, check_saved_shapes, check_saved_vectors, real_array
from llm2loss.diagnoser.comparison import Comparison, p_higher
from llm2loss.diagnoser.readout import READOUTS, fitted_readout, linear_scores
from llm2loss.diagnoser.rows import inverse_norms, normalise, text_mean
from llm2loss.errors import DataError, Llm2LossError

FORMAT = "llm2loss-diagnoser/1"
OBJECTIVES = ("rank", "regress", "familiarity")
ARCHS = ("linear", "mlp")
GAPS = ("none", "center")
SPACES = ("data", "text")
MAX_META_BYTES = 1 << 20  # a diagnoser.json is a few hundred bytes
MAX_DIM, MAX_MEMBERS, MAX_HIDDEN = 1 << 16, 1024, 1 << 16
_CHUNK_ROWS = 8192


class NotCovered(Exception):
    """This saved diagnoser is not one the numpy scorer covers (or fails a check): load it with
    `LossDiagnoser.load` instead."""


def gelu(x: np.ndarray) -> np.ndarray:
    """Exact (erf) GELU in float32, torch's default."""
    from scipy.special import erf

    return (0.5 * x * (1.0 + erf(x * np.float32(1.0 / math.sqrt(2.0))))).astype(np.float32, copy=False)


def centre(Z: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Unit rows minus `mean`, renormalised (a new array)."""
    return normalise(Z - mean)


def check_rows(X: Any, name: str, dim: int) -> np.ndarray:
    """`X` as finite float32 (n, dim) rows (one row of length dim is accepted), else DataError."""
    arr = real_array(X, name).astype(np.float32, copy=False)
    if arr.ndim == 1 and arr.shape[0] == dim:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[0] < 1:
        raise DataError(f"{name} must be a 2-D array (n_samples, dim) with at least one row, got shape "
                        f"{arr.shape}; reshape it, e.g. {name}.reshape(1, -1) for a single row")
    if arr.shape[1] != dim:
        raise DataError(f"{name} has dimension {arr.shape[1]} but the diagnoser was fitted on "
                        f"dimension {dim}; embed with the same encoder used for fitting")
    bad = ~np.isfinite(arr).all(axis=1)
    if bad.any():
        raise DataError(f"{name} has {int(bad.sum())} rows with NaN or inf (first rows: "
                        f"{', '.join(str(i) for i in np.flatnonzero(bad)[:5])}); drop or re-embed those samples")
    return arr


def _choice(params: dict[str, Any], key: str, choices: tuple[str, ...]) -> str:
    value = params.get(key)
    if value not in choices:
        raise NotCovered(f"{key} {value!r} is not one of {choices}")
    return str(value)


def _size(value: Any, name: str, limit: int) -> int:
    try:
        size = check_positive_int(value, name)
    except ValueError as exc:
        raise NotCovered(str(exc)) from None
    if size > limit:
        raise NotCovered(f"{name} {size} is above {limit}")
    return size


def _read_meta(meta_file: Path) -> dict[str, Any]:
    if meta_file.stat().st_size > MAX_META_BYTES:
        raise NotCovered(f"{meta_file.name} is over {MAX_META_BYTES} bytes")
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise NotCovered(f"{meta_file.name} is not readable JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or not isinstance(meta.get("params"), dict):
        raise NotCovered(f"{meta_file.name} is not format {FORMAT}")
    return meta


def _finite_float(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise NotCovered(f"{name} {value!r} is not a finite number")
    return float(value)


class NumpyDiagnoser:
    """A saved `LossDiagnoser`, scored in numpy; same attributes and outputs for prediction."""

    objective: str
    arch: str
    gap: str
    n_members: int
    hidden: int
    dim_: int

    @classmethod
    def load(cls, path: str | Path) -> "NumpyDiagnoser":
        """Read the directory `LossDiagnoser.save` wrote; NotCovered (with the reason) for anything
        this scorer does not handle or that fails a check."""
        src = Path(path)
        meta_file, weights_file = src / "diagnoser.json", src / "weights.safetensors"
        if not (meta_file.is_file() and weights_file.is_file()):
            raise NotCovered(f"{src} lacks diagnoser.json or weights.safetensors")
        meta = _read_meta(meta_file)
        params = meta["params"]
        self = cls()
        self.objective = _choice(params, "objective", OBJECTIVES)
        self.arch = _choice(params, "arch", ARCHS)
        self.gap = _choice(params, "gap", GAPS)
        self.text_readout = _choice({"text_readout": "heads", **params}, "text_readout", READOUTS)
        try:
            self.text_readout_ = fitted_readout(meta, self)
        except ValueError as exc:
            raise NotCovered(str(exc)) from None
        self.n_members = _size(params.get("n_members"), "n_members", MAX_MEMBERS)
        self.hidden = _size(params.get("hidden"), "hidden", MAX_HIDDEN)
        self.dim_ = _size(meta.get("dim"), "dim", MAX_DIM)
        self.target_mean_ = _finite_float(meta.get("target_mean"), "target_mean")
        self.target_std_ = _finite_float(meta.get("target_std"), "target_std")
        if not self.target_std_ > 0:
            raise NotCovered("target_std is not positive")
        self._load_tensors(src, weights_file)
        return self

    def _load_tensors(self, src: Path, weights_file: Path) -> None:
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        try:  # header against diagnoser.json first: nothing is allocated for a tampered one
            check_saved_shapes(weights_file, self.n_members, self.dim_, self.arch, self.hidden,
                               self.text_readout_ == "linear")
            tensors = load_file(str(weights_file))
            check_saved_vectors(tensors, src)
        except (Llm2LossError, SafetensorError, OSError, ValueError) as exc:
            raise NotCovered(str(exc)) from None
        for name, value in tensors.items():
            if value.dtype != np.float32 or not np.isfinite(value).all():
                raise NotCovered(f"tensor {name} is {value.dtype} or holds NaN/inf; only finite float32 is scored here")
        layers = 2 if self.arch == "mlp" else 1
        self._weights = [tensors[f"param.{i}"] for i in range(layers)]
        self._biases = [tensors[f"param.{layers + i}"] for i in range(layers)]
        w0 = self._weights[0]  # (K, dim, width): one (dim, K * width) matrix, input scale folded in
        self._w0 = np.ascontiguousarray(w0.transpose(1, 0, 2).reshape(self.dim_, -1) * np.float32(math.sqrt(self.dim_)))
        self._b0 = self._biases[0].transpose(1, 0, 2).reshape(1, -1)
        self.data_mean_ = tensors["data_mean"]
        self.text_mean_ = tensors.get("text_mean")
        self.member_center_ = tensors["member_center"]
        self.member_scale_ = tensors["member_scale"]
        self.readout_weight_ = tensors.get("readout_weight")
        self.readout_bias_ = tensors.get("readout_bias")

    def __repr__(self) -> str:
        return (f"NumpyDiagnoser(objective={self.objective!r}, arch={self.arch!r}, "
                f"n_members={self.n_members}, gap={self.gap!r})")

    # ------------------------------------------------------------------ scoring
    def _raw_scores(self, rows: np.ndarray, row_scale: np.ndarray | None) -> np.ndarray:
        """Raw member scores (K, n) of prepared rows; `row_scale` scores each row as if multiplied
        by it first (the L2 normalisation folded into the linear first layer)."""
        h = rows @ self._w0
        if row_scale is not None:
            h *= row_scale[:, None]
        h += self._b0
        k, n = self.n_members, len(rows)
        if self.arch == "linear":
            return np.ascontiguousarray(h.T)
        h = gelu(h).reshape(n, k, self.hidden)
        out = np.einsum("nkh,kh->kn", h, self._weights[1][:, :, 0]) + self._biases[1][:, :, 0]
        return out.astype(np.float32, copy=False)

    def _scores(self, X: np.ndarray, mean: np.ndarray | None, space: str = "data") -> np.ndarray:
        """Raw member scores of checked rows: normalised (and centred on `mean`), by chunks; text
        rows under the linear readout when there is one."""
        out = np.empty((self.n_members, len(X)), dtype=np.float32)
        linear = space == "text" and self.readout_weight_ is not None
        with one_blas_thread():  # a few phrases: one thread is fastest (llm2loss.blas)
            for lo in range(0, len(X), _CHUNK_ROWS):
                rows = np.ascontiguousarray(X[lo:lo + _CHUNK_ROWS])
                if linear:
                    rows = normalise(rows) if mean is None else centre(normalise(rows), mean)
                    out[:, lo:lo + len(rows)] = linear_scores(rows, self.readout_weight_,
                                                              self.readout_bias_)
                elif mean is None:
                    rows, scale = inverse_norms(rows)
                    out[:, lo:lo + len(rows)] = self._raw_scores(rows, scale)
                else:
                    out[:, lo:lo + len(rows)] = self._raw_scores(centre(normalise(rows), mean), None)
        return out

    def _output(self, raw: np.ndarray) -> np.ndarray:
        z = (raw - self.member_center_[:, None]) / self.member_scale_[:, None]
        if self.objective == "regress":
            y = z.astype(np.float64) * self.target_std_ + self.target_mean_
            return np.sign(y) * np.expm1(np.abs(y))  # inverse of the signed-log target transform
        return z.astype(np.float64)

    def _text_mean(self, X: np.ndarray) -> np.ndarray:
        return text_mean(self.text_mean_, X)

    def _centre_for(self, X: np.ndarray, space: str, text_mean: np.ndarray | None = None) -> np.ndarray | None:
        if space not in SPACES:
            raise ValueError(f"unknown space {space!r}: choose one of {', '.join(SPACES)}")
        if self.gap == "none":
            return None
        if space == "data":
            return self.data_mean_
        return self._text_mean(X) if text_mean is None else text_mean

    def predict_members(self, X: Any, *, space: str = "data") -> np.ndarray:
        """Every member's output, shape (n_members, n), in `LossDiagnoser`'s units."""
        rows = check_rows(X, "X", self.dim_)
        return self._output(self._scores(rows, self._centre_for(rows, space), space))

    def predict(self, X: Any, *, space: str = "data") -> np.ndarray:
        """Ensemble mean, shape (n,)."""
        return self.predict_members(X, space=space).mean(axis=0)

    def compare(self, Xa: Any, Xb: Any, *, space: str = "data") -> Comparison:
        """Row i of `Xa` against row i of `Xb` over the members (as `LossDiagnoser.compare`)."""
        A, B = check_rows(Xa, "Xa", self.dim_), check_rows(Xb, "Xb", self.dim_)
        if A.shape[0] != B.shape[0]:
            raise DataError(f"Xa has {A.shape[0]} rows but Xb has {B.shape[0]}; compare() pairs "
                            f"row i of Xa with row i of Xb, so pass equally many rows")
        text_mean = None
        if self.gap == "center" and space == "text":
            text_mean = self._text_mean(np.concatenate([A, B]))
        ma = self._output(self._scores(A, self._centre_for(A, space, text_mean), space))
        mb = self._output(self._scores(B, self._centre_for(B, space, text_mean), space))
        diff = ma - mb
        return Comparison(p_higher=p_higher(diff), differences=diff,
                          quartiles=np.quantile(diff, [0.0, 0.25, 0.5, 0.75, 1.0], axis=0))
