"""torchvision datasets by name (CIFAR10, CIFAR100, CelebA), read by torchvision's own code.

Nothing is downloaded: `path` must hold the dataset in torchvision's on-disk layout
(`cifar-10-batches-py/`, `cifar-100-python/`, `celeba/` with the txt files and
`img_align_celeba/`). Options: `name` (required), `split` ("train"/"test"; CelebA also
"valid"/"all"; default "test"), `verify` (default true: check torchvision's official md5 sums;
false accepts a local subset of the files, e.g. a re-packed sample), and for CelebA `label`
("identity", default, mapped to 0-based ints, or one of the 40 attribute names).

Attributes: CIFAR has `class`; CelebA has its 40 binary attributes as bool columns.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image
from torchvision import datasets

from llm2loss.config import DatasetSpec
from llm2loss.errors import ConfigError, DataError
from llm2loss.sources.base import RecordSource
from llm2loss.sources.images import ImageRecordSource, file_token, load_rgb

TORCHVISION_DATASETS = ("CIFAR10", "CIFAR100", "CelebA")


def _presence_only(self: Any) -> bool:
    """torchvision's integrity check, reduced to 'the files are there' (verify=False)."""
    if isinstance(self, datasets.CelebA):
        names = [f for _, _, f in self.file_list if not f.endswith((".zip", ".7z"))]
        folder = Path(self.root, self.base_folder)
        return all((folder / n).is_file() for n in names) and (folder / "img_align_celeba").is_dir()
    names = [f for f, _ in self.train_list + self.test_list]
    return all(Path(self.root, self.base_folder, n).is_file() for n in names if _wanted(self, n))


def _wanted(dataset: Any, filename: str) -> bool:
    listed = dataset.train_list if dataset.train else dataset.test_list
    return filename in {f for f, _ in listed}


def _load_cifar_meta(self: Any) -> None:
    """torchvision's `_load_meta` without the md5 comparison (verify=False)."""
    path = os.path.join(self.root, self.base_folder, self.meta["filename"])
    with open(path, "rb") as infile:
        data = pickle.load(infile, encoding="latin1")
    self.classes = data[self.meta["key"]]
    self.class_to_idx = {c: i for i, c in enumerate(self.classes)}


class _UnverifiedCIFAR10(datasets.CIFAR10):
    _check_integrity = _presence_only
    _load_meta = _load_cifar_meta


class _UnverifiedCIFAR100(datasets.CIFAR100):
    _check_integrity = _presence_only
    _load_meta = _load_cifar_meta


class _UnverifiedCelebA(datasets.CelebA):
    _check_integrity = _presence_only


_CLASSES = {
    ("CIFAR10", True): datasets.CIFAR10,
    ("CIFAR10", False): _UnverifiedCIFAR10,
    ("CIFAR100", True): datasets.CIFAR100,
    ("CIFAR100", False): _UnverifiedCIFAR100,
    ("CelebA", True): datasets.CelebA,
    ("CelebA", False): _UnverifiedCelebA,
}


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
    data = _open(_CLASSES[(name, verify)], f"{name} ({root})", root=str(root), train=split == "train")
    targets = np.asarray(data.targets, dtype=np.int64)
    images = data.data
    return ImageRecordSource(
        spec,
        modality="image",
        ids=[f"{split}-{i:05d}" for i in range(len(targets))],
        labels=targets.astype(object),
        attributes=pd.DataFrame(
            {"class": pd.Categorical([data.classes[t] for t in targets], categories=data.classes)}
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
