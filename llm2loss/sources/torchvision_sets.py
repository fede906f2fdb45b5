"""torchvision datasets by name (CIFAR10, CIFAR100, CelebA), read by torchvision's own code.

Nothing is downloaded: `path` must hold the dataset in torchvision's on-disk layout
(`cifar-10-batches-py/`, `cifar-100-python/`, `celeba/` with the txt files and
`img_align_celeba/`). Options: `name` (required), `split` ("train"/"test"; CelebA also
"valid"/"all"; default "test"), `verify` (default true: check torchvision's official md5 sums;
false accepts a local subset of the files, e.g. a re-packed sample), and for CelebA `label`
("identity", default, mapped to 0-based ints, or one of the 40 attribute names).

Attributes: CIFAR has `class`; CelebA has its 40 binary attributes as bool columns.

CIFAR's batches are pickles: they are read here with an unpickler that admits only the numpy
and builtin types those files hold (torchvision's own reader would run any pickled code).
"""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image
from torchvision import datasets
from torchvision.datasets.utils import check_integrity

from llm2loss.config import DatasetSpec
from llm2loss.errors import ConfigError, DataError
from llm2loss.sources.base import RecordSource
from llm2loss.sources.images import ImageRecordSource, file_token, load_rgb

TORCHVISION_DATASETS = ("CIFAR10", "CIFAR100", "CelebA")


def _presence_only(self: Any) -> bool:
    """torchvision's integrity check, reduced to 'the files are there' (verify=False)."""
    names = [f for _, _, f in self.file_list if not f.endswith((".zip", ".7z"))]
    folder = Path(self.root, self.base_folder)
    return all((folder / n).is_file() for n in names) and (folder / "img_align_celeba").is_dir()


class _UnverifiedCelebA(datasets.CelebA):
    _check_integrity = _presence_only


_CIFAR = {"CIFAR10": datasets.CIFAR10, "CIFAR100": datasets.CIFAR100}
# What CIFAR's pickled batches hold: dicts, lists, str/bytes and numpy arrays. Unpickling admits
# only the globals that rebuild those (numpy 1 and 2 spell the modules differently; protocol 5
# pickles use _frombuffer, protocol 2 ones _codecs.encode for bytes). Anything else, e.g.
# os.system in a planted batch, is refused before it is called.
_SAFE_GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
})


class _CifarUnpickler(pickle.Unpickler):
    """An unpickler that builds only builtin containers, strings, numbers and numpy arrays."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _SAFE_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _load_batch(path: Path) -> Any:
    """One CIFAR pickle, read with `_CifarUnpickler`; DataError naming the file otherwise."""
    try:
        with open(path, "rb") as f:
            return _CifarUnpickler(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise DataError(
            f"{path} is not a CIFAR batch ({str(exc).splitlines()[0][:160]}): it holds something "
            "other than the arrays and lists CIFAR's files hold; replace it with the official file"
        ) from None


def _read_cifar(name: str, root: Path, train: bool, verify: bool) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(images HWC uint8, labels, class names) of a CIFAR split in torchvision's layout.

    torchvision reads these with `pickle.load`, which runs whatever a planted file says; this
    reads the same files with `_CifarUnpickler`, after the same md5 check (verify=True)."""
    cls = _CIFAR[name]
    folder = root / cls.base_folder
    files = [(folder / f, md5) for f, md5 in (cls.train_list if train else cls.test_list)]
    files.append((folder / cls.meta["filename"], cls.meta["md5"]))
    for path, md5 in files:
        if not path.is_file() or (verify and not check_integrity(str(path), md5)):
            why = "is missing" if not path.is_file() else "does not match torchvision's md5"
            raise DataError(
                f"{name} ({root}) could not be read from disk ({path.name} {why}): place the "
                "dataset in torchvision's layout under `path` (llm2loss never downloads it), or set "
                "options.verify=false for a local copy whose files differ from the official ones"
            )
    images, labels = [], []
    for path, _ in files[:-1]:
        entry = _load_batch(path)
        if not isinstance(entry, dict) or "data" not in entry:
            raise DataError(f"{path} is not a CIFAR batch (no 'data'); replace it with the official file")
        images.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        labels.extend(entry["labels"] if "labels" in entry else entry["fine_labels"])
    meta = _load_batch(files[-1][0])
    classes = [str(c) for c in meta[cls.meta["key"]]]
    return np.vstack(images).transpose((0, 2, 3, 1)), np.asarray(labels, dtype=np.int64), classes


_CLASSES = {("CelebA", True): datasets.CelebA, ("CelebA", False): _UnverifiedCelebA}


def torchvision_source(spec: DatasetSpec) -> RecordSource:
    """A torchvision dataset read from `path` (never downloaded)."""
    name = spec.options.get("name")
    if name not in TORCHVISION_DATASETS:
        raise ConfigError(
            f"dataset {spec.name!r}: options.name {name!r} is not a supported torchvision "
            f"dataset; choose one of {list(TORCHVISION_DATASETS)}"
        )
    if not spec.path:
        raise ConfigError(f"dataset {spec.name!r}: torchvision datasets need `path` (the root folder)")
    split = str(spec.options.get("split", "test"))
    verify = bool(spec.options.get("verify", True))
    root = Path(spec.path).expanduser()
    if name == "CelebA":
        return _celeba(spec, root, split, verify)
    return _cifar(spec, name, root, split, verify)


def _open(cls: type, where: str, **kwargs: Any) -> Any:
    try:
        return cls(download=False, **kwargs)
    except (RuntimeError, FileNotFoundError, KeyError, ValueError) as exc:
        raise DataError(
            f"{where} could not be read from disk ({exc}): place the dataset in torchvision's "
            "layout under `path` (llm2loss never downloads it), or set options.verify=false for "
            "a local copy whose files differ from the official ones"
        ) from None


def _cifar(spec: DatasetSpec, name: str, root: Path, split: str, verify: bool) -> RecordSource:
    if split not in ("train", "test"):
        raise ConfigError(f"dataset {spec.name!r}: {name} split {split!r} must be 'train' or 'test'")
    images, targets, classes = _read_cifar(name, root, split == "train", verify)
    labels_fit = not len(targets) or 0 <= targets.min() <= targets.max() < len(classes)
    if len(targets) != len(images) or not labels_fit:
        raise DataError(f"{name} ({root}) has {len(images)} images, {len(targets)} labels and "
                        f"{len(classes)} classes that do not fit together; replace the batches "
                        "with the official files")
    return ImageRecordSource(
        spec,
        modality="image",
        ids=[f"{split}-{i:05d}" for i in range(len(targets))],
        labels=targets.astype(object),
        attributes=pd.DataFrame(
            {"class": pd.Categorical([classes[t] for t in targets], categories=classes)}
        ),
        load_input=lambda position: Image.fromarray(images[position]).convert("RGB"),
        content=lambda keep: [
            f"{targets[i]}:{hashlib.sha1(images[i].tobytes()).hexdigest()}" for i in keep
        ],
    )


def _celeba(spec: DatasetSpec, root: Path, split: str, verify: bool) -> RecordSource:
    if split not in ("train", "valid", "test", "all"):
        raise ConfigError(
            f"dataset {spec.name!r}: CelebA split {split!r} must be one of train, valid, test, all"
        )
    data = _open(
        _CLASSES[("CelebA", verify)], f"CelebA ({root})", root=str(root), split=split,
        target_type=["attr", "identity"],
    )
    names = [n for n in data.attr_names if n]
    attrs = pd.DataFrame(data.attr.numpy()[:, : len(names)].astype(bool), columns=names)
    label = spec.options.get("label", "identity")
    if label == "identity":
        labels = data.identity.numpy()[:, 0].astype(np.int64) - 1  # CelebA ids start at 1
    elif label in names:
        labels = attrs[label].to_numpy().astype(np.int64)
    else:
        raise ConfigError(
            f"dataset {spec.name!r}: CelebA label {label!r} is unknown; use 'identity' or one of "
            f"the attributes {names}"
        )
    folder = Path(data.root, data.base_folder, "img_align_celeba")
    files = [folder / f for f in data.filename]
    return ImageRecordSource(
        spec,
        modality="image",
        ids=list(data.filename),
        labels=labels.astype(object),
        attributes=attrs,
        load_input=lambda position: load_rgb(files[position]),
        content=lambda keep: [f"{labels[i]}:{file_token(files[i])}" for i in keep],
    )
