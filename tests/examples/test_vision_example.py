"""The vision example's releases parse, build their sources on torchvision-format fixtures, and
their models run on those samples; its training script trains and writes loadable weights.

The fixtures are the inputs tests' own makers (tests/inputs/test_inputs_torchvision.py), imported,
so both stay in the formats torchvision reads. No download happens: `verify=False` accepts the
fixtures, which do not match the official md5 sums.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "inputs"))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "vision"))

import test_inputs_torchvision as fixtures  # noqa: E402
import train_classifier  # noqa: E402

from llm2loss.config import ReleaseSpec  # noqa: E402
from llm2loss.errors import ConfigError  # noqa: E402
from llm2loss.losses import compute_losses, load_model  # noqa: E402
from llm2loss.sources import build_source  # noqa: E402
from llm2loss.vocab import load_attribute_pairs  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "vision"
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                 "truck"]


def _release(name: str) -> ReleaseSpec:
    return ReleaseSpec.model_validate_json((EXAMPLES / name / "release.json").read_text())


def _on_fixture(release: ReleaseSpec, root: Path) -> ReleaseSpec:
    """The release, untrained, reading from `root` with the md5 check off (fixtures are not the
    official files)."""
    dataset = release.dataset.model_copy(
        update={"path": str(root), "options": {**release.dataset.options, "verify": False}})
    return release.model_copy(update={"dataset": dataset, "weights": None})


def _write_cifar10(root: Path, n_test: int = 6, n_train: int = 4) -> list[int]:
    folder = root / "cifar-10-batches-py"
    labels = [i % 10 for i in range(n_test)]
    fixtures._pickle(folder / "test_batch", {"data": fixtures._cifar_images(n_test, 0), "labels": labels})
    for b in range(1, 6):
        fixtures._pickle(folder / f"data_batch_{b}", {"data": fixtures._cifar_images(n_train, b),
                                                      "labels": [(b + i) % 10 for i in range(n_train)]})
    fixtures._pickle(folder / "batches.meta", {"label_names": CIFAR_CLASSES})
    return labels


def test_release_files_parse_and_name_the_paper_setup() -> None:
    for name in ("cifar10", "celeba"):
        release = _release(name)
        assert release.entrypoint == "llm2loss.example_models.vision:resnet18"
        assert release.encoder == "open_clip:ViT-B-32/openai"
        assert release.dataset.kind == "torchvision"
        assert "not measured" in release.metadata["not_measured_here"]
    cifar = _release("cifar10")
    assert cifar.classes == CIFAR_CLASSES
    assert cifar.metadata["entrypoint_kwargs"]["num_classes"] == len(CIFAR_CLASSES)


def test_celeba_release_has_a_phrase_pair_for_every_attribute() -> None:
    release = _release("celeba")
    pairs = {k: tuple(v) for k, v in release.dataset.attribute_phrases.items()}
    assert pairs == load_attribute_pairs("celeba_attribute_pairs")
    assert sorted(pairs) == sorted(fixtures.CELEBA_ATTRS)


def test_cifar10_release_builds_its_source_and_runs_its_model(tmp_path: Path) -> None:
    labels = _write_cifar10(tmp_path)
    release = _on_fixture(_release("cifar10"), tmp_path)
    source = build_source(release.dataset, cache_dir=tmp_path)
    shard = source.read_shard(0, 100)
    assert shard.labels.tolist() == labels
    assert shard.attributes["class"].tolist() == [CIFAR_CLASSES[i] for i in labels]
    model = load_model(release, weights_path=None, device="cpu")
    table = compute_losses(model, shard, task=release.task).to_pandas()
    assert len(table) == len(labels)
    assert np.isfinite(table["loss"]).all() and (table["loss"] > 0).all()
    assert table["pred"].between(0, 9).all()


def test_celeba_release_builds_its_source_with_forty_attributes(tmp_path: Path) -> None:
    attrs = fixtures._write_celeba(tmp_path, 9)
    release = _on_fixture(_release("celeba"), tmp_path)
    source = build_source(release.dataset, cache_dir=tmp_path)
    shard = source.read_shard(0, 100)
    test_rows = [2, 5, 8]  # partition code 2 = test in the fixture (i % 3)
    blond = fixtures.CELEBA_ATTRS.index("Blond_Hair")
    assert shard.ids == ["000003.jpg", "000006.jpg", "000009.jpg"]
    assert shard.labels.tolist() == [int(attrs[i, blond] == 1) for i in test_rows]
    assert set(release.dataset.attribute_phrases) == set(shard.attributes.columns)
    model = load_model(release, weights_path=None, device="cpu")
    table = compute_losses(model, shard, task=release.task).to_pandas()
    assert np.isfinite(table["loss"]).all() and set(table["pred"]) <= {0, 1}


def test_training_script_writes_weights_the_release_loads(tmp_path: Path) -> None:
    _write_cifar10(tmp_path)
    release_file = tmp_path / "release.json"
    release = _on_fixture(_release("cifar10"), tmp_path)
    release_file.write_text(release.model_dump_json())
    out = tmp_path / "weights" / "resnet18.safetensors"
    assert train_classifier.main([str(release_file), "--out", str(out), "--epochs", "1",
                                  "--batch-size", "8", "--cache-dir", str(tmp_path)]) == 0
    trained = load_model(release, weights_path=out, device="cpu")  # strict load: keys and shapes
    fresh = load_model(release, weights_path=None, device="cpu")
    changed = [k for k, v in trained.model.state_dict().items()
               if v.dtype.is_floating_point and not v.equal(fresh.model.state_dict()[k])]
    assert changed, "training left every weight at its initial value"


def test_training_script_refuses_download_of_a_non_torchvision_dataset(tmp_path: Path) -> None:
    spam = ReleaseSpec.model_validate_json(
        (EXAMPLES.parent / "releases" / "spam-filter" / "v1" / "release.json").read_text())
    with pytest.raises(ConfigError, match="place it by hand"):
        train_classifier.download(spam)
    with pytest.raises(ConfigError, match="does not exist"):
        train_classifier.read_release(tmp_path / "missing.json")


def test_cifar10_phrase_file_is_an_in_domain_vocabulary() -> None:
    from llm2loss.vocab import is_out_of_domain, load_vocabulary, vocabularies_for

    path = str(EXAMPLES / "cifar10" / "phrases.txt")
    phrases = load_vocabulary(path)
    assert len(phrases) >= 20 and "a cat that looks like a dog" in phrases
    assert not is_out_of_domain(path)
    assert vocabularies_for("image", [path, "image_ood"])[path] == phrases
