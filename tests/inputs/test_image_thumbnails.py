"""Thumbnails of image samples: `image_thumbnail` and the image sources' `preview(input)`."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from llm2loss.config import DatasetSpec
from llm2loss.errors import ConfigError, DataError
from llm2loss.sources import build_source
from llm2loss.sources.images import image_thumbnail

PREFIX = "data:image/png;base64,"


def _decode(uri: str) -> Image.Image:
    assert uri.startswith(PREFIX)
    return Image.open(io.BytesIO(base64.b64decode(uri[len(PREFIX):])))


def test_thumbnail_of_a_path_keeps_aspect_and_pixels(tmp_path: Path) -> None:
    path = tmp_path / "wide.png"
    picture = Image.new("RGB", (32, 16), (10, 200, 30))
    picture.putpixel((0, 0), (255, 0, 0))
    picture.save(path)
    thumb = _decode(image_thumbnail(path))
    assert thumb.format == "PNG" and thumb.size == (64, 32)  # scaled up, aspect kept
    assert thumb.convert("RGB").getpixel((0, 0)) == (255, 0, 0)  # nearest: crisp corner pixel
    assert thumb.convert("RGB").getpixel((40, 20)) == (10, 200, 30)
    big = _decode(image_thumbnail(Image.new("L", (300, 600), 128), size=48))
    assert big.size == (24, 48) and big.mode == "RGB"


def test_thumbnail_bad_input_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no thumbnail: image file not found"):
        image_thumbnail(tmp_path / "absent.png")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="no thumbnail: unreadable image broken.png"):
        image_thumbnail(tmp_path / "broken.png")
    with pytest.raises(DataError, match="image path or a PIL image, got int"):
        image_thumbnail(3)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="8..1024, got 0"):
        image_thumbnail(Image.new("RGB", (4, 4)), size=0)


def test_image_sources_preview_their_inputs(tmp_path: Path) -> None:
    (tmp_path / "img" / "cat").mkdir(parents=True)
    Image.new("RGB", (20, 20), (250, 10, 10)).save(tmp_path / "img" / "cat" / "a.png")
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame({"id": ["a"], "path": ["img/cat/a.png"], "label": ["cat"]}).to_csv(manifest, index=False)
    for kind, path in (("image_manifest", manifest), ("image_folder", tmp_path / "img")):
        source = build_source(DatasetSpec(name="m", kind=kind, path=str(path)), cache_dir=tmp_path)
        shard = source.read_shard(0, 10)
        thumb = _decode(source.preview(shard.inputs[0]))
        assert thumb.size == (64, 64) and thumb.convert("RGB").getpixel((30, 30)) == (250, 10, 10)
