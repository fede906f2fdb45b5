"""Previews of samples: what a person sees of the example samples behind a finding.

A text sample previews as a snippet: its first `SNIPPET_CHARS` characters with runs of white
space (newlines included) folded into one space and control characters dropped. It stays
untrusted text: renderers escape it. An image previews as a small PNG thumbnail, a
`data:image/png;base64,...` URI that a page shows inline and that opens offline.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import Any

from PIL import Image

# one thumbnail implementation for every image source (it also scales small images up, crisply)
from llm2loss.sources.images import image_thumbnail

SNIPPET_CHARS = 240
THUMBNAIL_PIXELS = 64
_SPACE = re.compile(r"\s+")


def text_snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    """The first `limit` characters of `text` on one line, without control characters."""
    visible = "".join(ch for ch in str(text) if unicodedata.category(ch)[0] != "C" or ch.isspace())
    folded = _SPACE.sub(" ", visible).strip()
    return folded if len(folded) <= limit else folded[: limit - 1].rstrip() + "…"


def preview_of(sample_input: Any) -> str:
    """The preview of one loaded sample input: a snippet of text, a thumbnail of an image."""
    if isinstance(sample_input, Image.Image):
        return image_thumbnail(sample_input, THUMBNAIL_PIXELS)
    if isinstance(sample_input, str):
        return text_snippet(sample_input)
    return ""


def previews(source: Any, ids: Sequence[str]) -> list[str]:
    """One preview per id ("" for a sample that cannot be read or a source without inputs)."""
    inputs_of = getattr(source, "inputs_of", None)
    if inputs_of is None:
        return [""] * len(ids)
    found = inputs_of(list(ids))
    return [preview_of(found[i]) if i in found else "" for i in ids]
