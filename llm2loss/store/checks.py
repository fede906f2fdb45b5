"""Checks on what is read back from the store before it becomes a path, a key or a decision.

The store is shared: other people and jobs can write to it, so a manifest, a lock or a listed key
is untrusted input. Everything here turns such input into either a value that is safe to use or
one clear error naming the object, the field and the fix:

- `check_audit_manifest`: an audit manifest names the model and version it was read for, and
  every key it lists lies inside that audit's (or the dataset's) folder;
- `contained_path`: a local path built from a key stays inside the folder it belongs to, even
  through symlinks;
- `refuse_nonfinite_rows`, `check_loss_column`: a sealed part that verifies against its sidecar
  but holds NaN (its writer also wrote the sidecar) is named, with sample ids, and taken out of
  its stage so the rerun recomputes it;
- `lock_body`: a lock's JSON as `{"owner": str, "expires_at": float}`, or None when it is not one
  (such a lock was not written by llm2loss and counts as expired).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from llm2loss.errors import ConfigError, DataError, StoreError
from llm2loss.store import keys


def _untrusted(key: str, problem: str) -> StoreError:
    return StoreError(
        f"the audit manifest {key} cannot be trusted: {problem}; delete it and rerun the audit "
        "(someone or something else wrote it)"
    )


def _key_under(manifest: dict[str, Any], field: str, prefixes: tuple[str, ...], key: str) -> None:
    value = manifest.get(field)
    if value is None:
        return
    try:
        keys.check_key(value)
    except ConfigError:
        raise _untrusted(key, f"its {field!r} {value!r} is not a clean store key") from None
    if not any(value.startswith(f"{p}/") for p in prefixes):
        raise _untrusted(key, f"its {field!r} {value!r} lies outside {' or '.join(prefixes)}")


def check_audit_manifest(manifest: Any, model: str, version: str) -> dict[str, Any]:
    """`manifest` if it is the audit manifest of `model@version` with keys inside its folders.

    Checks: a JSON object; `model` and `version` equal to the ones asked for (so a path built from
    them is the one the caller meant); `report` and `metrics` under the audit's report folder,
    `losses` under the audit's folder, `embeddings` under `datasets/`. Raises StoreError otherwise.
    """
    key = keys.audit_manifest_key(model, version)
    if not isinstance(manifest, dict):
        raise _untrusted(key, f"it holds a JSON {type(manifest).__name__}, not an object")
    for field, expected in (("model", model), ("version", version)):
        if manifest.get(field, expected) != expected:
            raise _untrusted(key, f"its {field!r} is {manifest.get(field)!r}, not {expected!r}")
    if manifest.get("status") == "completed" and not isinstance(manifest.get("report"), str):
        raise _untrusted(key, "it is completed but names no 'report'")
    report = keys.report_prefix(model, version)
    _key_under(manifest, "report", (report,), key)
    _key_under(manifest, "metrics", (report,), key)
    _key_under(manifest, "losses", (keys.audit_prefix(model, version),), key)
    _key_under(manifest, "embeddings", (keys.DATASETS_ROOT,), key)
    return manifest


def contained_path(root: Path, *parts: str) -> Path:
    """`root / parts...`, refused with StoreError when it resolves (symlinks followed) outside root.

    Each part must be a safe name (`keys.validate_name`) or a clean key (`keys.check_key`)."""
    for part in parts:
        keys.check_key(part)
    path = Path(root).joinpath(*(p for part in parts for p in part.split("/")))
    base = Path(root).resolve()
    resolved = path.resolve()
    if resolved != base and not resolved.is_relative_to(base):
        raise StoreError(
            f"{path} leads outside {base} (through a symlink to {resolved}): llm2loss never "
            "writes or reads outside its folder; remove the link"
        )
    return path


def safe_name(value: Any, what: str) -> str:
    """`value` when it is a safe name (see `keys.validate_name`), else StoreError: it came from the
    store, so the fix is to the store, not to the caller's arguments."""
    try:
        return keys.validate_name(value, what)
    except ConfigError as exc:
        raise StoreError(f"the store holds an unsafe {what} ({exc}); remove that entry") from None


def lock_body(data: bytes) -> dict[str, Any] | None:
    """The lock `{"owner": str, "expires_at": float}` in `data`, or None when `data` is not one.

    Anything else (not UTF-8, not JSON, a list, a string, null, fields of the wrong type or a
    non-finite expiry) was not written by llm2loss: callers treat it as an expired lock."""
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(body, dict):
        return None
    owner, expires = body.get("owner"), body.get("expires_at")
    if not isinstance(owner, str) or isinstance(expires, bool) or not isinstance(expires, (int, float)):
        return None
    if not math.isfinite(expires):
        return None
    return {"owner": owner, "expires_at": float(expires)}


def refuse_nonfinite_rows(store: Any, prefix: str, part: Any, ids: list[str],
                           matrix: np.ndarray) -> None:
    """DataError naming the part and the sample ids of its rows with NaN or inf; the part is
    taken out of its stage first, so the rerun recomputes it (it verifies, so it would be kept)."""
    bad = ~np.isfinite(matrix).all(axis=1)
    if bad.any():
        index = keys.part_index(part.key)
        if index is not None:
            store.retract_part(prefix, index)
        examples = [ids[i] for i in np.flatnonzero(bad)[:3]]
        raise DataError(
            f"embeddings part {part.key} holds {int(bad.sum())} of {len(ids)} rows with NaN or inf "
            f"(ids {examples}); it was taken out of its stage: rerun the audit to recompute it"
        )


def check_loss_column(losses: Any, prefix: str) -> None:
    """DataError unless the losses stage has a finite numeric `loss` per sample."""
    if "id" not in losses or "loss" not in losses or losses["loss"].dtype.kind not in "iuf":
        raise DataError(f"the losses stage {prefix} has no numeric 'id'/'loss' columns (it has "
                        f"{list(losses.columns)}): delete the stage and rerun the audit")
    bad = ~np.isfinite(losses["loss"].to_numpy(dtype=np.float64))
    if bad.any():
        raise DataError(f"the losses stage {prefix} holds {int(bad.sum())} NaN or infinite losses "
                        f"(ids {losses['id'][bad].head(3).tolist()}): delete the stage and rerun the audit")
