"""Image datasets from files: a folder tree (one folder per class) and a manifest table.

`image_folder`: `path/<class>/<image>`; classes are the sorted folder names (torchvision's own
`find_classes`/`make_dataset`), ids are the paths relative to the root, attribute `class`.

`image_manifest`: a CSV/JSONL/Parquet table with columns id, path, label (names configurable as
options `id_column`, `path_column`, `label_column`) and optional attribute columns
(`attribute_columns`, default every other column). Relative paths are relative to the table's
folder. String labels map to `options.classes` or to their sorted distinct values.

Images are returned as RGB `PIL.Image`; an unreadable file becomes a recorded failure.

Both are `ImageRecordSource`s: `preview(input)` gives a small PNG thumbnail of an input as a
`data:image/png;base64,...` URI (`image_thumbnail`), which a report can show offline.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError
from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

from llm2loss.config import DatasetSpec
from llm2loss.errors import ConfigError, DataError
from llm2loss.sources.base import RecordSource, SampleError, encode_labels
from llm2loss.sources.text import read_table_file, require_columns


def load_rgb(path: Path) -> Image.Image:
    """Open an image fully as RGB; SampleError with the reason when it cannot be read."""
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except FileNotFoundError:
        raise SampleError(f"image file not found: {path}") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise SampleError(f"unreadable image {path.name}: {exc}") from None


def image_thumbnail(image: str | Path | Image.Image, size: int = 64) -> str:
    """A `data:image/png;base64,...` URI of `image` (a path or a PIL image), longest side `size` px.

    Small images are scaled up with nearest-neighbour (pixels stay crisp), large ones down with
    Lanczos; the aspect ratio is kept.
    """
    if not isinstance(size, int) or isinstance(size, bool) or not 8 <= size <= 1024:
        raise ConfigError(f"thumbnail size must be a whole number of pixels in 8..1024, got {size!r}")
    if isinstance(image, (str, Path)):
        try:
            picture = load_rgb(Path(image).expanduser())
        except SampleError as exc:
            raise DataError(f"no thumbnail: {exc}") from None
    elif isinstance(image, Image.Image):
        picture = image.convert("RGB")
    else:
        raise DataError(f"a thumbnail needs an image path or a PIL image, got {type(image).__name__}")
    scale = size / max(picture.size)
    shape = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
    resample = Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.LANCZOS
    buffer = io.BytesIO()
    picture.resize(shape, resample).save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


class ImageRecordSource(RecordSource):
    """A `RecordSource` of images that can show one of its inputs as a thumbnail."""

    def preview(self, input: Image.Image, size: int = 64) -> str:
        """A `data:image/png;base64,...` thumbnail of one input (a PIL image) of this source."""
        return image_thumbnail(input, size)


def file_token(path: Path) -> str:
    """Size and modification time of a file ('missing' when absent): cheap content identity."""
    try:
        stat = path.stat()
    except OSError:
        return "missing"
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def image_folder_source(spec: DatasetSpec) -> RecordSource:
    """Images in `path/<class>/...`, labelled by their folder."""
    root = _root(spec)
    try:
        _, class_to_idx = find_classes(str(root))
        samples = make_dataset(str(root), class_to_idx, extensions=IMG_EXTENSIONS)
    except FileNotFoundError as exc:
        raise DataError(
            f"dataset {spec.name!r}: {exc}; put images in one sub-folder per class "
            f"(extensions {IMG_EXTENSIONS})"
        ) from None
    paths = [Path(p) for p, _ in samples]
    names = {i: c for c, i in class_to_idx.items()}
    return ImageRecordSource(
        spec,
        modality="image",
        ids=[p.relative_to(root).as_posix() for p in paths],
        labels=np.array([label for _, label in samples], dtype=object),
        attributes=pd.DataFrame(
            {"class": pd.Categorical([names[label] for _, label in samples], categories=list(class_to_idx))}
        ),
        load_input=lambda position: load_rgb(paths[position]),
        content=lambda keep: [file_token(paths[i]) for i in keep],
    )


def image_manifest_source(spec: DatasetSpec) -> RecordSource:
    """Images listed in a manifest table with id, path, label and attribute columns."""
    if not spec.path:
        raise ConfigError(f"dataset {spec.name!r}: image_manifest needs `path` (the manifest file)")
    manifest = Path(spec.path).expanduser()
    frame = read_table_file(manifest)
    opts = spec.options
    cols = {
        "id_column": opts.get("id_column", "id"),
        "path_column": opts.get("path_column", "path"),
        "label_column": opts.get("label_column", "label"),
    }
    where = f"manifest {str(manifest)!r}"
    require_columns(frame, cols, where)
    attr_cols = opts.get("attribute_columns")
    if attr_cols is None:
        attr_cols = [c for c in frame.columns if c not in set(cols.values())]
    require_columns(frame, {"attribute_columns": c for c in attr_cols}, where)
    base = manifest.parent
    paths = [_resolve(base, p) for p in frame[cols["path_column"]].tolist()]
    labels, _ = encode_labels(frame[cols["label_column"]], classes=opts.get("classes"), where=where)
    return ImageRecordSource(
        spec,
        modality="image",
        ids=frame[cols["id_column"]].astype(str).tolist(),
        labels=labels,
        attributes=frame[attr_cols],
        load_input=lambda position: _load_listed(paths[position]),
        content=lambda keep: [file_token(paths[i]) if paths[i] else "none" for i in keep],
    )


def _resolve(base: Path, value: object) -> Path | None:
    if value is None or (isinstance(value, float) and np.isnan(value)) or not str(value).strip():
        return None
    path = Path(str(value)).expanduser()
    return path if path.is_absolute() else base / path


def _load_listed(path: Path | None) -> Image.Image:
    if path is None:
        raise SampleError("no image path in the manifest")
    return load_rgb(path)


def _root(spec: DatasetSpec) -> Path:
    if not spec.path:
        raise ConfigError(f"dataset {spec.name!r}: image_folder needs `path` (the root folder)")
    root = Path(spec.path).expanduser()
    if not root.is_dir():
        raise DataError(f"dataset {spec.name!r}: folder {str(root)!r} does not exist; check `path`")
    return root
