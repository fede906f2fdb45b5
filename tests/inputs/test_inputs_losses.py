"""Per-sample losses: equal to torch's own losses on a known model; weights and entrypoint errors."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from llm2loss.config import DatasetSpec, ReleaseSpec
from llm2loss.errors import ConfigError, DataError, WeightsError
from llm2loss.losses import compute_losses, load_model, read_precomputed_losses
from llm2loss.sources import Shard

ENTRY = "inputs_fixture_models"


def _release(entrypoint: str, **kw) -> ReleaseSpec:
    return ReleaseSpec(model="m", version="v1", entrypoint=entrypoint,
                       dataset=DatasetSpec(name="d", kind="text_table", path="x.csv"), **kw)


def _shard(inputs: list, labels, ids: list[str] | None = None) -> Shard:
    ids = ids or [f"s{i}" for i in range(len(inputs))]
    return Shard(index=0, ids=ids, inputs=inputs, labels=np.asarray(labels),
                 attributes=pd.DataFrame(index=range(len(ids))), unreadable=[])


@pytest.fixture
def linear_weights(tmp_path: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    torch.manual_seed(1)
    state = {"linear.weight": torch.randn(3, 4), "linear.bias": torch.randn(3)}
    path = tmp_path / "w.safetensors"
    save_file(state, str(path))
    return path, state


def test_multiclass_losses_equal_torch_cross_entropy(linear_weights) -> None:
    path, state = linear_weights
    model = load_model(_release(f"{ENTRY}:tiny_linear"), weights_path=path)
    x = np.random.default_rng(0).normal(size=(10, 4)).astype(np.float32)
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    table = compute_losses(model, _shard(list(x), labels), task="multiclass", batch_size=3)
    assert table.column_names == ["id", "loss", "label", "pred", "correct"]
    logits = torch.as_tensor(x) @ state["linear.weight"].T + state["linear.bias"]
    expected = F.cross_entropy(logits, torch.as_tensor(labels), reduction="none").numpy()
    np.testing.assert_allclose(table.column("loss").to_numpy(), expected, rtol=1e-5)
    assert table.column("pred").to_pylist() == logits.argmax(1).tolist()
    assert table.column("correct").to_pylist() == (logits.argmax(1).numpy() == labels).tolist()
    assert table.schema.field("id").type == pa.string() and table.schema.field("loss").type == pa.float64()


def test_binary_regression_and_custom_tasks(linear_weights, tmp_path: Path) -> None:
    x = np.random.default_rng(1).normal(size=(6, 4)).astype(np.float32)
    one = {"linear.weight": torch.randn(1, 4), "linear.bias": torch.randn(1)}
    path = tmp_path / "one.safetensors"
    save_file(one, str(path))
    model = load_model(_release(f"{ENTRY}:tiny_linear", metadata={"entrypoint_kwargs": {"n_out": 1}}), weights_path=path)
    logit = (torch.as_tensor(x) @ one["linear.weight"].T + one["linear.bias"])[:, 0]
    labels = np.array([0, 1, 1, 0, 1, 0])
    binary = compute_losses(model, _shard(list(x), labels), task="binary")
    expected = F.binary_cross_entropy_with_logits(logit, torch.as_tensor(labels, dtype=torch.float32), reduction="none")
    np.testing.assert_allclose(binary.column("loss").to_numpy(), expected.numpy(), rtol=1e-5)
    assert binary.column("pred").to_pylist() == (logit >= 0).long().tolist()

    targets = np.linspace(-1, 1, 6)
    reg = compute_losses(model, _shard(list(x), targets), task="regression")
    np.testing.assert_allclose(reg.column("loss").to_numpy(), (logit.numpy() - targets) ** 2, rtol=1e-5)
    assert reg.column("correct").null_count == 6

    custom_release = _release(f"{ENTRY}:tiny_linear", task="custom", loss=f"{ENTRY}:absolute_error",
                              metadata={"entrypoint_kwargs": {"n_out": 1}})
    custom = compute_losses(load_model(custom_release, weights_path=path), _shard(list(x), targets), task="custom")
    np.testing.assert_allclose(custom.column("loss").to_numpy(), np.abs(logit.numpy() - targets), rtol=1e-5)


def test_predict_proba_models_get_log_loss() -> None:
    model = load_model(_release(f"{ENTRY}:proba_by_length"), weights_path=None)
    texts = ["ab", "abcdefgh", "abcd"]
    table = compute_losses(model, _shard(texts, [0, 1, 1]), task="binary")
    np.testing.assert_allclose(table.column("loss").to_numpy(), [-np.log(0.8), -np.log(0.8), -np.log(0.4)], rtol=1e-6)
    assert table.column("pred").to_pylist() == [0, 1, 0]
    multi = compute_losses(model, _shard(texts, [0, 1, 1]), task="multiclass")
    np.testing.assert_allclose(multi.column("loss").to_numpy(), table.column("loss").to_numpy(), rtol=1e-6)


def test_labels_outside_the_classes_are_a_data_error(linear_weights) -> None:
    model = load_model(_release(f"{ENTRY}:tiny_linear"), weights_path=linear_weights[0])
    with pytest.raises(DataError, match=r"labels \[7\] are outside the model's 3 classes"):
        compute_losses(model, _shard([np.zeros(4)] * 2, [0, 7]), task="multiclass")
    with pytest.raises(ValueError, match="unknown task 'ranking'.*multiclass"):
        compute_losses(model, _shard([np.zeros(4)], [0]), task="ranking")


def test_weights_that_do_not_fit_are_a_weights_error(tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.safetensors"
    save_file({"linear.weight": torch.randn(5, 4), "linear.bias": torch.randn(5)}, str(wrong))
    with pytest.raises(WeightsError, match="do not match.*size mismatch for linear.weight"):
        load_model(_release(f"{ENTRY}:tiny_linear"), weights_path=wrong)
    missing = tmp_path / "missing.safetensors"
    save_file({"linear.weight": torch.randn(3, 4)}, str(missing))
    with pytest.raises(WeightsError, match="linear.bias"):
        load_model(_release(f"{ENTRY}:tiny_linear"), weights_path=missing)
    with pytest.raises(WeightsError, match="no load_state_dict"):
        load_model(_release(f"{ENTRY}:proba_by_length"), weights_path=wrong)
    with pytest.raises(WeightsError, match="does not exist"):
        load_model(_release(f"{ENTRY}:tiny_linear"), weights_path=tmp_path / "absent.safetensors")
    with pytest.raises(WeightsError, match="not a local file.*weights_path"):
        load_model(_release(f"{ENTRY}:tiny_linear", weights="s3://bucket/w.safetensors"), weights_path=None)


class Sneaky:
    """A picklable object: stands for arbitrary code in a pickle file."""


def test_pickles_where_weights_belong_are_refused(tmp_path: Path, linear_weights) -> None:
    pt = tmp_path / "model.pt"
    with open(pt, "wb") as handle:
        pickle.dump({"linear.weight": Sneaky()}, handle)
    with pytest.raises(WeightsError, match="refusing to load model.pt.*safetensors"):
        load_model(_release(f"{ENTRY}:tiny_linear"), weights_path=pt)
    pkl = tmp_path / "model.pkl"
    pkl.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(WeightsError, match="pickle files can run code"):
        load_model(_release(f"{ENTRY}:tiny_linear"), weights_path=pkl)
    # a plain tensor state_dict saved by torch.save is fine (weights_only=True accepts it)
    ok = tmp_path / "ok.pt"
    torch.save({"linear.weight": torch.zeros(3, 4), "linear.bias": torch.zeros(3)}, ok)
    model = load_model(_release(f"{ENTRY}:tiny_linear"), weights_path=ok)
    table = compute_losses(model, _shard([np.ones(4)], [2]), task="multiclass")
    np.testing.assert_allclose(table.column("loss").to_numpy(), [np.log(3)], rtol=1e-6)


def test_entrypoints_that_do_not_import_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="does not import.*no_such_package"):
        load_model(_release("no_such_package.models:net"), weights_path=None)
    with pytest.raises(ConfigError, match="no function 'absent'"):
        load_model(_release(f"{ENTRY}:absent"), weights_path=None)
    with pytest.raises(ConfigError, match="neither a torch nn.Module nor"):
        load_model(_release(f"{ENTRY}:not_a_model"), weights_path=None)
    model = load_model(_release(f"{ENTRY}:tiny_linear"), weights_path=None)
    with pytest.raises(ConfigError, match="preprocess"):
        model.model.preprocess = None
        compute_losses(model, _shard(["text"], [0]), task="multiclass")


def test_precomputed_losses(tmp_path: Path) -> None:
    path = tmp_path / "losses.parquet"
    pq.write_table(pa.table({"id": ["a", "b", "c"], "loss": [0.5, 1.5, 0.1]}), path)
    table = read_precomputed_losses(path, ids=["c", "a"])
    assert table.column("id").to_pylist() == ["c", "a"]
    assert table.column("loss").to_pylist() == [0.1, 0.5]
    assert table.column_names == ["id", "loss", "label", "pred", "correct"]
    with pytest.raises(DataError, match="no precomputed loss.*'zz'"):
        read_precomputed_losses(path, ids=["a", "zz"])
    pq.write_table(pa.table({"id": ["a", "b"], "loss": [0.5, float("nan")]}), path)
    with pytest.raises(DataError, match="NaN"):
        read_precomputed_losses(path)
    pq.write_table(pa.table({"id": ["a", "a"], "loss": [0.5, 0.2]}), path)
    with pytest.raises(DataError, match="repeat ids"):
        read_precomputed_losses(path)
    pq.write_table(pa.table({"id": ["a"], "score": [0.5]}), path)
    with pytest.raises(DataError, match=r"lack column\(s\) \['loss'\]"):
        read_precomputed_losses(path)


def test_torchvision_zoo_classifier_on_pil_images(tmp_path: Path) -> None:
    from PIL import Image

    from llm2loss.example_models.vision import classifier, resnet18

    torch.manual_seed(0)
    net = resnet18(num_classes=4, image_size=32).eval()
    path = tmp_path / "resnet.safetensors"
    save_file(net.state_dict(), str(path))
    release = _release("llm2loss.example_models.vision:resnet18",
                       metadata={"entrypoint_kwargs": {"num_classes": 4, "image_size": 32}})
    model = load_model(release, weights_path=path, device="cpu")
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (40, 36, 3), dtype=np.uint8)) for _ in range(5)]
    labels = np.array([0, 1, 2, 3, 0])
    table = compute_losses(model, _shard(images, labels), task="multiclass", batch_size=2)
    with torch.no_grad():
        logits = net(torch.stack([net.preprocess(im) for im in images]))
    expected = F.cross_entropy(logits, torch.as_tensor(labels), reduction="none").numpy()
    np.testing.assert_allclose(table.column("loss").to_numpy(), expected, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="unknown architecture 'vgg'.*resnet18"):
        classifier("vgg")
