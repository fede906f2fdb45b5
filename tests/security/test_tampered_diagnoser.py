"""A saved diagnoser read from a store someone else can write: tampered sizes are refused from the
safetensors header before anything is allocated, and tampered scales or means never give inf."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from llm2loss.diagnoser import LossDiagnoser
from llm2loss.diagnoser.checks import expected_shapes
from llm2loss.diagnoser.heads import MemberHeads
from llm2loss.errors import WeightsError


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 8)).astype(np.float32)
    path = tmp_path_factory.mktemp("diagnoser") / "d"
    LossDiagnoser(objective="rank", arch="mlp", n_members=2, hidden=4, max_epochs=2).fit(X, rng.random(80)).save(path)
    return path


def _copy(saved, tmp_path):
    out = tmp_path / "copy"
    out.mkdir()
    for f in saved.iterdir():
        (out / f.name).write_bytes(f.read_bytes())
    return out


@pytest.mark.parametrize("arch", ["linear", "mlp"])
def test_expected_shapes_are_the_heads_own(arch):
    heads = MemberHeads(3, 5, arch=arch, hidden=4)
    shapes = expected_shapes(3, 5, arch, 4)
    assert [shapes[f"param.{i}"] for i in range(len(list(heads.parameters())))] == [
        tuple(p.shape) for p in heads.parameters()]


@pytest.mark.parametrize(("field", "value"), [("dim", 4_000_000), ("dim", 2**40), ("n_members", 100_000),
                                              ("hidden", 10**9), ("dim", True), ("n_members", 0)])
def test_tampered_sizes_are_refused_before_allocating(saved, tmp_path, field, value):
    folder = _copy(saved, tmp_path)
    meta = json.loads((folder / "diagnoser.json").read_text())
    (meta if field == "dim" else meta["params"])[field] = value
    (folder / "diagnoser.json").write_text(json.dumps(meta))
    start = time.perf_counter()
    with pytest.raises(WeightsError) as info:
        LossDiagnoser.load(folder)
    assert time.perf_counter() - start < 1.0
    assert "\n" not in str(info.value) and "save" in str(info.value)


@pytest.mark.parametrize(("name", "value"), [("member_scale", np.zeros(2, np.float32)),
                                             ("member_center", np.array([np.inf, 0], np.float32)),
                                             ("member_scale", np.ones(7, np.float32)),
                                             ("data_mean", np.full(8, np.nan, np.float32))])
def test_tampered_scales_and_means_are_refused(saved, tmp_path, name, value):
    folder = _copy(saved, tmp_path)
    tensors = load_file(str(folder / "weights.safetensors"))
    tensors[name] = value
    save_file(tensors, str(folder / "weights.safetensors"))
    with pytest.raises(WeightsError, match=name if value.shape != (7,) else "does not match"):
        LossDiagnoser.load(folder)


def test_tampered_target_scale_is_refused(saved, tmp_path):
    folder = _copy(saved, tmp_path)
    meta = json.loads((folder / "diagnoser.json").read_text())
    meta["target_std"] = 0.0
    (folder / "diagnoser.json").write_text(json.dumps(meta))
    with pytest.raises(WeightsError, match="target_std"):
        LossDiagnoser.load(folder)


def test_the_untampered_copy_loads(saved, tmp_path):
    loaded = LossDiagnoser.load(_copy(saved, tmp_path))
    assert loaded.predict(np.eye(8, dtype=np.float32)).shape == (8,)
