"""Dataset readers: every dataset kind becomes a `Source` yielding `Shard`s.

`build_source(spec, cache_dir=...)` is the one entry point; the kinds are listed in `KINDS`.
Default attribute phrases per kind (used when a spec gives none) are in `default_attribute_phrases`.
"""

from __future__ import annotations

from pathlib import Path

from llm2loss.config import DatasetSpec
from llm2loss.errors import ConfigError
from llm2loss.sources.base import RecordSource, SampleError, Shard, Source
from llm2loss.sources.images import image_folder_source, image_manifest_source
from llm2loss.sources.spamassassin import SPAM_ATTRIBUTE_PHRASES, spamassassin_source
from llm2loss.sources.text import GENERATED_ATTRIBUTE_PHRASES, generated_text_source, text_table_source
from llm2loss.sources.torchvision_sets import torchvision_source

KINDS = ("spamassassin", "text_table", "image_folder", "image_manifest", "torchvision", "generated_text")

__all__ = [
    "KINDS", "RecordSource", "SampleError", "Shard", "Source", "build_source",
    "default_attribute_phrases",
]


def build_source(spec: DatasetSpec, *, cache_dir: Path) -> Source:
    """The reader for `spec.kind`; ConfigError naming the kinds when it is unknown."""
    kind = spec.kind
    if kind == "spamassassin":
        return spamassassin_source(spec, cache_dir=Path(cache_dir))
    if kind == "text_table":
        return text_table_source(spec)
    if kind == "generated_text":
        return generated_text_source(spec)
    if kind == "image_folder":
        return image_folder_source(spec)
    if kind == "image_manifest":
        return image_manifest_source(spec)
    if kind == "torchvision":
        return torchvision_source(spec)
    raise ConfigError(f"unknown dataset kind {kind!r}: choose one of {list(KINDS)}")


def default_attribute_phrases(spec: DatasetSpec) -> dict[str, tuple[str, str]]:
    """The spec's own attribute phrases, else good defaults for its kind (may be empty)."""
    if spec.attribute_phrases:
        return dict(spec.attribute_phrases)
    if spec.kind == "spamassassin":
        return dict(SPAM_ATTRIBUTE_PHRASES)
    if spec.kind == "generated_text":
        return dict(GENERATED_ATTRIBUTE_PHRASES)
    return {}
