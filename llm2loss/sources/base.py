"""The shape every dataset reader shares: shards of (ids, inputs, labels, attributes).

Each concrete reader (image folder, manifest, torchvision, text table, SpamAssassin, generated
text) only builds an index table (id, label, attribute columns) and a function that loads one
input. `RecordSource` does the rest the same way for all of them: duplicate ids and empty data
are errors, `limit` takes a deterministic subset, shards are fixed slices, a sample that cannot be
read is skipped and recorded in the shard's `unreadable` list, and the fingerprint is a content hash that
is stable across processes.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from llm2loss.config import DatasetSpec
from llm2loss.errors import DataError

Modality = Literal["text", "image"]


class SampleError(Exception):
    """One sample cannot be used (unreadable image, empty text, ...); it is skipped and recorded."""


@dataclass
class Shard:
    """A fixed slice of a source: the samples that could be read, plus those that could not."""

    index: int
    ids: list[str]
    inputs: list[Any]
    labels: np.ndarray
    attributes: pd.DataFrame
    unreadable: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)


@runtime_checkable
class Source(Protocol):
    """What the rest of llm2loss needs from a dataset."""

    name: str
    modality: Modality
    fingerprint: str

    def ids(self) -> list[str]: ...

    def n_shards(self, shard_size: int) -> int: ...

    def read_shard(self, index: int, shard_size: int) -> Shard: ...


def stable_hash(value: str) -> int:
    """A 64-bit hash of `value` that is the same in every process (unlike `hash`)."""
    return int.from_bytes(hashlib.sha256(value.encode("utf-8")).digest()[:8], "big")


def deterministic_subset(ids: list[str], limit: int | None) -> np.ndarray:
    """Positions of at most `limit` ids, chosen by a stable hash of the id, in original order.

    Hash order is a random-looking but reproducible sample, the same on every run and machine,
    and adding samples to a dataset does not reshuffle the ones already chosen.
    """
    if limit is None or limit >= len(ids):
        return np.arange(len(ids))
    order = sorted(range(len(ids)), key=lambda i: stable_hash(ids[i]))
    return np.sort(np.asarray(order[:limit], dtype=np.int64))


def content_fingerprint(spec: DatasetSpec, parts: Iterable[str]) -> str:
    """sha256 of what determines the samples: kind, options, limit and per-sample content tokens.

    The dataset name, path and attribute phrases are left out: they do not change the samples.
    """
    digest = hashlib.sha256()
    head = {"kind": spec.kind, "options": spec.options, "limit": spec.limit}
    digest.update(json.dumps(head, sort_keys=True, default=str).encode("utf-8"))
    for part in parts:
        digest.update(b"\x00")
        digest.update(part.encode("utf-8"))
    return digest.hexdigest()[:16]


def frame_digest(frame: pd.DataFrame) -> str:
    """A stable content hash of a table (pandas' own row hashing, fixed key)."""
    if frame.empty:
        return "empty"
    rows = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return hashlib.sha256(rows.tobytes()).hexdigest()


def check_unique_ids(ids: list[str], where: str) -> None:
    """Raise DataError naming a few duplicated ids, if any."""
    series = pd.Series(ids, dtype="object")
    dup = series[series.duplicated()].unique()
    if len(dup):
        shown = ", ".join(repr(x) for x in dup[:5])
        raise DataError(
            f"{where} has {len(dup)} duplicated id(s), e.g. {shown}: make every id unique "
            "(e.g. prefix it with its folder or split)"
        )


class RecordSource:
    """A source over an index table (id, label) with aligned attributes and an input loader.

    `load_input(position)` returns the input of row `position` of the full table, or raises
    SampleError with a reason. `attributes` is a table aligned with `ids`, or a function of the
    kept positions (for attributes that are costly to derive). `content` yields one token per row (e.g. file size and mtime, or
    a hash of the text) and feeds the fingerprint.
    """

    def __init__(
        self,
        spec: DatasetSpec,
        *,
        modality: Modality,
        ids: list[str],
        labels: np.ndarray | list[Any],
        attributes: pd.DataFrame | Callable[[np.ndarray], pd.DataFrame] | None,
        load_input: Callable[[int], Any],
        content: Callable[[np.ndarray], Iterable[str]],
    ) -> None:
        where = f"dataset {spec.name!r} ({spec.kind})"
        ids = [str(i) for i in ids]
        if not ids:
            raise DataError(f"{where} has no samples: check its path {spec.path!r} and options")
        check_unique_ids(ids, where)
        labels = np.asarray(labels, dtype=object)
        if len(labels) != len(ids):
            raise DataError(f"{where}: {len(ids)} ids but {len(labels)} labels; give one label per id")
        keep = deterministic_subset(ids, spec.limit)
        if attributes is None:
            kept_attributes = pd.DataFrame(index=range(len(keep)))
        elif callable(attributes):
            kept_attributes = attributes(keep)
        else:
            kept_attributes = attributes.reset_index(drop=True).iloc[keep]
        self.spec = spec
        self.name = spec.name
        self.modality: Modality = modality
        self._positions = keep
        self._ids = [ids[i] for i in keep]
        self._labels = labels[keep]
        self._attributes = kept_attributes.reset_index(drop=True)
        self._load_input = load_input
        self.fingerprint = content_fingerprint(
            spec, [f"{i}|{tok}" for i, tok in zip(self._ids, content(keep), strict=True)]
        )

    def ids(self) -> list[str]:
        """All ids (after `limit`), in order."""
        return list(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def attribute_table(self) -> pd.DataFrame:
        """Attributes of every sample (after `limit`), with an `id` column first."""
        return pd.concat(
            [pd.DataFrame({"id": self._ids}), self._attributes], axis=1
        )

    def inputs_of(self, ids: list[str]) -> dict[str, Any]:
        """The loaded inputs of the given ids; ids unknown or unreadable are left out."""
        row_of = {sample_id: row for row, sample_id in enumerate(self._ids)}
        out: dict[str, Any] = {}
        for sample_id in ids:
            row = row_of.get(sample_id)
            if row is None:
                continue
            try:
                out[sample_id] = self._load_input(int(self._positions[row]))
            except SampleError:
                continue
        return out

    def n_shards(self, shard_size: int) -> int:
        """How many shards of `shard_size` samples cover the source."""
        _check_shard_size(shard_size)
        return math.ceil(len(self._ids) / shard_size)

    def read_shard(self, index: int, shard_size: int) -> Shard:
        """Read shard `index`; unreadable samples go to `unreadable` with a reason."""
        n = self.n_shards(shard_size)
        if not 0 <= index < n:
            raise DataError(
                f"shard {index} does not exist: dataset {self.name!r} has {n} shard(s) of "
                f"{shard_size}; use an index in 0..{n - 1}"
            )
        rows = range(index * shard_size, min((index + 1) * shard_size, len(self._ids)))
        ok: list[int] = []
        inputs: list[Any] = []
        unreadable: list[tuple[str, str]] = []
        for row in rows:
            sample_id = self._ids[row]
            if _is_missing(self._labels[row]):
                unreadable.append((sample_id, "missing label"))
                continue
            try:
                inputs.append(self._load_input(int(self._positions[row])))
            except SampleError as exc:
                unreadable.append((sample_id, str(exc)))
                continue
            ok.append(row)
        return Shard(
            index=index,
            ids=[self._ids[r] for r in ok],
            inputs=inputs,
            labels=_label_array(self._labels[ok]),
            attributes=self._attributes.iloc[ok].reset_index(drop=True),
            unreadable=unreadable,
        )


def _check_shard_size(shard_size: int) -> None:
    if shard_size < 1:
        raise DataError(f"shard_size must be at least 1, got {shard_size}")


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _label_array(values: np.ndarray) -> np.ndarray:
    """int64 when every label is a whole number (classes), else float64 (regression)."""
    as_float = np.asarray(values, dtype=np.float64)
    if as_float.size and np.all(np.isfinite(as_float)) and np.all(as_float == np.round(as_float)):
        return as_float.astype(np.int64)
    if not as_float.size:
        return np.zeros(0, dtype=np.int64)
    return as_float


def encode_labels(
    values: pd.Series, *, classes: list[str] | None, where: str
) -> tuple[np.ndarray, list[str] | None]:
    """Turn a label column into numbers: numbers stay, strings map to class indices.

    String labels map to `classes` when given (unknown ones raise DataError), else to the sorted
    distinct values. Missing labels stay missing (those samples are unreadable when read).
    """
    missing = values.isna()
    present = values[~missing]
    if classes is None and pd.api.types.is_numeric_dtype(present.dtype):
        return values.to_numpy(dtype=object), None
    names = list(classes) if classes is not None else sorted(present.astype(str).unique())
    lookup = {name: i for i, name in enumerate(names)}
    as_text = present.astype(str)
    unknown = sorted(set(as_text) - set(lookup))
    if unknown:
        raise DataError(
            f"{where}: labels {unknown[:5]} are not among the classes {names[:10]}; "
            "add them to options.classes or fix the labels"
        )
    out = np.full(len(values), None, dtype=object)
    out[~missing.to_numpy()] = [lookup[t] for t in as_text]
    return out, names
