"""Embeddings made elsewhere: a Parquet table (id, embedding) looked up by sample id.

Spec: `precomputed:<path or URI>?text=<text encoder spec>&modality=image`. `encode_inputs` takes
sample ids; `encode_text` delegates to the named text encoder, which must embed phrases in the
same space as the table (e.g. the same CLIP model's text tower). The table is read with pyarrow,
so local paths and URIs pyarrow understands (s3://...) both work.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pyarrow.parquet as pq

from llm2loss.encoders.base import Encoder, EncoderSpec, l2_normalise, short_hash
from llm2loss.errors import ConfigError, DataError, WeightsError


class PrecomputedEncoder:
    """Looks embeddings up by id; phrases go to a real text encoder of the same space."""

    def __init__(self, spec: EncoderSpec, *, text_encoder: Callable[[str], Encoder]) -> None:
        self.name = f"precomputed:{spec.target}"
        self.modality = spec.options.get("modality", "image")
        if self.modality not in ("image", "text"):
            raise ConfigError(f"precomputed modality {self.modality!r}: choose one of ['image', 'text']")
        self._text_spec = spec.options.get("text")
        self._text_factory = text_encoder
        try:
            table = pq.read_table(spec.target, columns=["id", "embedding"])
        except (OSError, ValueError) as exc:
            raise WeightsError(
                f"could not read precomputed embeddings {spec.target!r} ({str(exc)[:200]}): give a "
                "Parquet file with columns id (string) and embedding (list of floats)"
            ) from None
        ids = [str(i) for i in table.column("id").to_pylist()]
        if len(set(ids)) != len(ids):
            raise DataError(f"precomputed embeddings {spec.target!r} repeat some ids: keep one row per id")
        matrix = np.asarray(table.column("embedding").to_pylist(), dtype=np.float32)
        if matrix.ndim != 2 or not np.all(np.isfinite(matrix)):
            raise DataError(
                f"precomputed embeddings {spec.target!r} must be finite vectors of one length"
            )
        self._row = {sample_id: i for i, sample_id in enumerate(ids)}
        self._matrix = l2_normalise(matrix)
        self.dim = int(matrix.shape[1])
        digest = short_hash(*(ids[:1] + [str(matrix.shape), str(float(matrix.sum()))]))
        self.fingerprint = short_hash("precomputed", spec.target, digest, str(self._text_spec))

    def encode_inputs(self, batch: list[Any]) -> np.ndarray:
        """Sample ids -> their stored embeddings; DataError names ids that are missing."""
        missing = [str(i) for i in batch if str(i) not in self._row]
        if missing:
            raise DataError(
                f"{len(missing)} id(s) have no precomputed embedding, e.g. {missing[:3]}: "
                "recompute the table for this dataset"
            )
        rows = [self._row[str(i)] for i in batch]
        return self._matrix[rows].reshape(len(rows), self.dim)

    def encode_text(self, texts: list[str]) -> np.ndarray:
        """Phrases through the named text encoder (option `text`)."""
        if not self._text_spec:
            raise ConfigError(
                f"{self.name} cannot embed text: add '?text=<encoder spec>' naming an encoder of "
                "the same space, e.g. '?text=open_clip:ViT-B-32/openai'"
            )
        encoder = self._text_factory(self._text_spec)
        out = encoder.encode_text(texts)
        if out.shape[1] != self.dim:
            raise DataError(
                f"text encoder {self._text_spec!r} gives {out.shape[1]}-d vectors but the "
                f"precomputed embeddings are {self.dim}-d: name the encoder that made them"
            )
        return out
