"""Checks for LossDiagnoser's inputs, parameters, training targets and saved files.

Query and training matrices must be finite real 2-D arrays of the fitted dimension; a bad one is
a DataError naming the problem and the fix, found without a full-size temporary (one BLAS pass).

A saved diagnoser may come from a store someone else can write, so `diagnoser.json` is checked
against the safetensors header (shapes only, nothing allocated) before any tensor is built: a
tampered `dim` or `n_members` is a WeightsError at once, not gigabytes of allocation first. The
saved per-member centre/scale and means must have the right shape and be finite (a scale of 0
would give inf). Integer parameters accept any integral number (`np.int64(5)`) but never a bool.
"""

from __future__ import annotations

import numbers
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError, safe_open

from llm2loss.errors import DataError, WeightsError


def check_choice(value: object, choices: tuple[str, ...], what: str) -> None:
    """ValueError naming the valid `choices` unless `value` is one of them."""
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


def check_positive_int(value: Any, name: str, minimum: int = 1) -> int:
    """`value` as an int >= minimum; ValueError naming `name` for bools, floats and the rest."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name} must be {kind}, got {value!r}")
    return int(value)


def real_array(values: Any, name: str) -> np.ndarray:
    """`values` as a numpy array of real numbers (bool, int or float); DataError for complex
    values (a cast would silently drop their imaginary part) and for anything not numeric."""
    try:
        arr = np.asarray(values)
    except (ValueError, TypeError) as exc:
        raise DataError(f"{name} is not a numeric array ({exc}); pass a numpy array of floats") from None
    if arr.dtype.kind == "c":
        raise DataError(f"{name} holds complex numbers; pass real values (e.g. np.abs or .real "
                        "of them, whichever you mean)")
    if arr.dtype.kind not in "biuf":
        raise DataError(f"{name} has dtype {arr.dtype}, not numbers; pass a numpy array of floats")
    return arr


def expected_shapes(n_members: int, dim: int, arch: str, hidden: int,
                    readout: bool = False) -> dict[str, tuple[int, ...]]:
    """Shapes of the tensors `LossDiagnoser.save` writes for these sizes (param.i in the order of
    `MemberHeads.parameters()`: the weights of each layer, then the biases; `readout`: the linear
    readout's weights and biases too)."""
    widths = [dim, hidden, 1] if arch == "mlp" else [dim, 1]
    layers = list(zip(widths[:-1], widths[1:]))
    shapes = [(n_members, fan_in, fan_out) for fan_in, fan_out in layers]
    shapes += [(n_members, 1, fan_out) for _, fan_out in layers]
    out = {f"param.{i}": s for i, s in enumerate(shapes)}
    out.update(data_mean=(dim,), member_center=(n_members,), member_scale=(n_members,))
    if readout:
        out.update(readout_weight=(n_members, dim), readout_bias=(n_members,))
    return out


def check_saved_shapes(weights_file: Path, n_members: int, dim: int, arch: str, hidden: int,
                       readout: bool = False) -> None:
    """WeightsError unless the safetensors header holds exactly the tensors these sizes need
    (text_mean optional; the linear readout's exactly when `readout`). Reads the header only."""
    expected = expected_shapes(n_members, dim, arch, hidden, readout)
    try:
        with safe_open(str(weights_file), framework="np") as f:
            found = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118
    except (SafetensorError, OSError) as exc:
        raise WeightsError(f"saved diagnoser file {weights_file} is unreadable or corrupt: not a "
                           f"valid safetensors file ({exc}); save the diagnoser again") from None
    text_mean = found.pop("text_mean", (dim,))
    if found != expected or text_mean != (dim,):
        wrong = sorted(k for k in set(found) | set(expected) if found.get(k) != expected.get(k))
        raise WeightsError(
            f"{weights_file} does not match its diagnoser.json (n_members={n_members}, dim={dim}, "
            f"arch={arch!r}, hidden={hidden}, linear readout {readout}; tensors {wrong[:4]} "
            "differ): the files were changed "
            "after saving; save the diagnoser again"
        )


def check_saved_vectors(tensors: dict[str, np.ndarray], where: Path) -> None:
    """WeightsError unless the saved means, centres and scales are finite (scales > 0)."""
    for name in ("data_mean", "text_mean", "member_center", "member_scale", "readout_weight",
                 "readout_bias"):
        value = tensors.get(name)
        if value is not None and not np.isfinite(value).all():
            raise WeightsError(f"saved diagnoser at {where}: {name} holds NaN or inf; save it again")
    if not (tensors["member_scale"] > 0).all():
        raise WeightsError(f"saved diagnoser at {where}: member_scale must be positive; save it again")


def check_training_targets(targets: np.ndarray, raw: np.ndarray, objective: str) -> np.ndarray:
    """`targets` (already cast to the training dtype) if the cast kept them usable: finite and not
    all equal. Losses finite in float64 can overflow float32 (above ~3.4e38) or collapse into one
    value (1e10 + tiny differences), and training would go on silently."""
    bad = ~np.isfinite(targets)
    if bad.any():
        raise DataError(
            f"{int(bad.sum())} losses overflow float32, the training dtype, for objective "
            f"{objective!r} (e.g. {raw[bad][0]!r}): rescale the losses (e.g. divide them by their "
            "maximum) or clip them"
        )
    if targets.size and np.ptp(targets) == 0:
        raise DataError(
            f"the losses differ in float64 (range {np.ptp(raw)!r} around {raw[0]!r}) but are all "
            f"equal in float32, the training dtype, so there is nothing to {objective}: subtract "
            "their minimum or rescale them before fitting"
        )
    return targets
