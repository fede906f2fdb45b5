"""torchvision datasets read by torchvision's own code from small fixtures in their on-disk formats."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from llm2loss.config import DatasetSpec
from llm2loss.errors import ConfigError, DataError
from llm2loss.sources import build_source

CELEBA_ATTRS = [
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs",
    "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows",
    "Chubby", "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones",
    "Male", "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin",
    "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks", "Sideburns", "Smiling", "Straight_Hair",
    "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat", "Wearing_Lipstick", "Wearing_Necklace",
    "Wearing_Necktie", "Young",
]


def _pickle(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        pickle.dump(obj, handle)


def _cifar_images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 3 * 32 * 32), dtype=np.uint8)


def _spec(root: Path, **options) -> DatasetSpec:
    return DatasetSpec(name="tv", kind="torchvision", path=str(root), options=options)


def test_cifar10_test_split_from_pickle_batches(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    data = _cifar_images(7, 0)
    labels = [3, 1, 4, 1, 5, 9, 2]
    _pickle(folder / "test_batch", {"data": data, "labels": labels})
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    _pickle(folder / "batches.meta", {"label_names": names})
    source = build_source(_spec(tmp_path, name="CIFAR10", split="test", verify=False), cache_dir=tmp_path)
    shard = source.read_shard(0, 100)
    assert shard.ids[0] == "test-00000" and len(shard.ids) == 7
    assert shard.labels.tolist() == labels
    assert shard.attributes["class"].tolist()[:2] == ["cat", "automobile"]
    first = np.asarray(shard.inputs[0])
    assert first.shape == (32, 32, 3)
    assert np.array_equal(first, data[0].reshape(3, 32, 32).transpose(1, 2, 0))
    # The official md5 check is on by default: these fixture files do not match it.
    with pytest.raises(DataError, match="verify=false"):
        build_source(_spec(tmp_path, name="CIFAR10", split="test"), cache_dir=tmp_path)


def test_cifar100_uses_fine_labels(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-100-python"
    _pickle(folder / "test", {"data": _cifar_images(3, 1), "fine_labels": [0, 99, 42]})
    _pickle(folder / "meta", {"fine_label_names": [f"c{i}" for i in range(100)]})
    source = build_source(_spec(tmp_path, name="CIFAR100", split="test", verify=False), cache_dir=tmp_path)
    shard = source.read_shard(0, 10)
    assert shard.labels.tolist() == [0, 99, 42]
    assert shard.attributes["class"].tolist() == ["c0", "c99", "c42"]


def _write_celeba(root: Path, n: int) -> np.ndarray:
    folder = root / "celeba"
    images = folder / "img_align_celeba"
    images.mkdir(parents=True)
    rng = np.random.default_rng(0)
    attrs = rng.choice([-1, 1], size=(n, len(CELEBA_ATTRS)))
    names = [f"{i + 1:06d}.jpg" for i in range(n)]
    for i, name in enumerate(names):
        Image.new("RGB", (20, 24), (i * 20 % 256, 100, 50)).save(images / name)
    lines = lambda rows: "\n".join(rows) + "\n"  # noqa: E731
    (folder / "list_eval_partition.txt").write_text(lines(f"{nm} {i % 3}" for i, nm in enumerate(names)))
    (folder / "identity_CelebA.txt").write_text(lines(f"{nm} {i // 2 + 1}" for i, nm in enumerate(names)))
    (folder / "list_bbox_celeba.txt").write_text(
        lines([str(n), "image_id x_1 y_1 width height"] + [f"{nm} 1 2 3 4" for nm in names])
    )
    (folder / "list_landmarks_align_celeba.txt").write_text(
        lines([str(n), "lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y "
               "rightmouth_x rightmouth_y"] + [f"{nm} " + " ".join(["5"] * 10) for nm in names])
    )
    (folder / "list_attr_celeba.txt").write_text(
        lines([str(n), " ".join(CELEBA_ATTRS) + " "]
              + [f"{nm} " + " ".join(f"{v:2d}" for v in row) for nm, row in zip(names, attrs)])
    )
    return attrs


def test_celeba_identity_labels_and_forty_attributes(tmp_path: Path) -> None:
    attrs = _write_celeba(tmp_path, 9)
    source = build_source(_spec(tmp_path, name="CelebA", split="all", verify=False), cache_dir=tmp_path)
    shard = source.read_shard(0, 100)
    assert shard.ids[:2] == ["000001.jpg", "000002.jpg"]
    assert shard.labels.tolist() == [i // 2 for i in range(9)]  # identities 1.. -> 0-based
    assert list(shard.attributes.columns) == CELEBA_ATTRS
    assert shard.attributes.dtypes.eq(bool).all()
    assert np.array_equal(shard.attributes.to_numpy(), attrs == 1)
    assert shard.inputs[0].size == (20, 24)

    test_split = build_source(_spec(tmp_path, name="CelebA", split="test", verify=False, label="Smiling"), cache_dir=tmp_path)
    test_shard = test_split.read_shard(0, 100)
    assert test_shard.ids == ["000003.jpg", "000006.jpg", "000009.jpg"]
    smiling = CELEBA_ATTRS.index("Smiling")
    assert test_shard.labels.tolist() == [int(attrs[i, smiling] == 1) for i in (2, 5, 8)]

    with pytest.raises(ConfigError, match="label 'Grumpy'.*Smiling"):
        build_source(_spec(tmp_path, name="CelebA", split="all", verify=False, label="Grumpy"), cache_dir=tmp_path)


def test_torchvision_errors_name_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'MNIST'.*CIFAR10"):
        build_source(_spec(tmp_path, name="MNIST"), cache_dir=tmp_path)
    with pytest.raises(DataError, match="never downloads"):
        build_source(_spec(tmp_path / "empty", name="CIFAR10", verify=False), cache_dir=tmp_path)
    with pytest.raises(ConfigError, match="'train' or 'test'"):
        build_source(_spec(tmp_path, name="CIFAR10", split="valid"), cache_dir=tmp_path)
