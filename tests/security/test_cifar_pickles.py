"""CIFAR's batches are pickles: a planted batch that would run code is refused, and the marker it
would create never appears; real-format batches (protocols 2 and 5) still load."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from llm2loss.config import DatasetSpec
from llm2loss.errors import DataError
from llm2loss.sources import build_source


class Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def _spec(root: Path) -> DatasetSpec:
    return DatasetSpec(name="tv", kind="torchvision", path=str(root),
                       options={"name": "CIFAR10", "split": "test", "verify": False})


def _write(root: Path, batch: object, protocol: int = 4) -> None:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "test_batch").write_bytes(pickle.dumps(batch, protocol=protocol))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"c{i}" for i in range(10)]}))


@pytest.mark.parametrize("where", ["batch", "inside the data", "meta"])
def test_a_planted_cifar_batch_runs_no_code(tmp_path, where):
    marker = tmp_path / "payload-ran"
    images = np.zeros((2, 3072), np.uint8)
    batch = {"data": images, "labels": [0, 1]}
    if where == "batch":
        batch = Payload(marker)
    elif where == "inside the data":
        batch["labels"] = [0, Payload(marker)]
    _write(tmp_path, batch)
    if where == "meta":
        (tmp_path / "cifar-10-batches-py" / "batches.meta").write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(DataError, match="refusing to load posix.mkdir|refusing to load os.mkdir") as info:
        build_source(_spec(tmp_path), cache_dir=tmp_path)
    assert "\n" not in str(info.value)
    assert not marker.exists(), "unpickling ran the payload"


@pytest.mark.parametrize("protocol", [2, 5])
def test_real_format_batches_load(tmp_path, protocol):
    images = np.random.default_rng(0).integers(0, 256, (3, 3072), dtype=np.uint8)
    _write(tmp_path, {"data": images, "labels": [9, 0, 4], "batch_label": "testing batch 1 of 1"}, protocol)
    shard = build_source(_spec(tmp_path), cache_dir=tmp_path).read_shard(0, 10)
    assert shard.labels.tolist() == [9, 0, 4]
    assert np.array_equal(np.asarray(shard.inputs[1]), images[1].reshape(3, 32, 32).transpose(1, 2, 0))


def test_labels_outside_the_classes_are_one_clear_error(tmp_path):
    _write(tmp_path, {"data": np.zeros((2, 3072), np.uint8), "labels": [0, 10]})
    with pytest.raises(DataError, match="do not fit together"):
        build_source(_spec(tmp_path), cache_dir=tmp_path)
