"""Dataset sources: text tables, image folders and manifests, generated text, shared behaviour."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from llm2loss.config import DatasetSpec
from llm2loss.errors import ConfigError, DataError
from llm2loss.sources import Shard, Source, build_source, default_attribute_phrases


def _text_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": ["a", "b", "c", "d", "e"],
            "text": ["good movie", "bad plot", "   ", "fine acting", None],
            "label": [1, 0, 1, None, 0],
            "short": [True, True, True, False, True],
        }
    )


def _build(tmp_path: Path, **kw) -> Source:
    return build_source(DatasetSpec(**kw), cache_dir=tmp_path / "cache")


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_text_table_reads_every_format_and_records_bad_samples(tmp_path: Path, suffix: str) -> None:
    frame = _text_frame()
    path = tmp_path / f"reviews{suffix}"
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_parquet(path)
    source = _build(tmp_path, name="reviews", kind="text_table", path=str(path))
    assert source.modality == "text"
    assert source.ids() == ["a", "b", "c", "d", "e"]
    shard = source.read_shard(0, 10)
    assert isinstance(shard, Shard)
    assert shard.ids == ["a", "b"]
    assert shard.inputs == ["good movie", "bad plot"]
    assert shard.labels.dtype == np.int64 and shard.labels.tolist() == [1, 0]
    assert shard.attributes["short"].tolist() == [True, True]
    reasons = dict(shard.unreadable)
    assert reasons == {"c": "empty text", "d": "missing label", "e": "missing text"}


def test_text_table_configurable_columns_and_string_labels(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    pd.DataFrame({"key": ["x", "y"], "body": ["hi there", "bye now"], "y": ["pos", "neg"], "lang": ["en", "fr"]}).to_csv(path, index=False)
    source = _build(
        tmp_path, name="t", kind="text_table", path=str(path),
        options={"id_column": "key", "text_column": "body", "label_column": "y", "classes": ["neg", "pos"]},
    )
    shard = source.read_shard(0, 5)
    assert shard.labels.tolist() == [1, 0]
    assert list(shard.attributes.columns) == ["lang"]


def test_text_table_errors_name_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    pd.DataFrame({"id": ["a", "a"], "text": ["x", "y"], "label": [0, 1]}).to_csv(path, index=False)
    with pytest.raises(DataError, match="duplicated id.*'a'.*unique"):
        _build(tmp_path, name="t", kind="text_table", path=str(path))
    with pytest.raises(DataError, match="no column 'body'.*options.text_column"):
        _build(tmp_path, name="t", kind="text_table", path=str(path), options={"text_column": "body"})
    pd.DataFrame({"id": [], "text": [], "label": []}).to_csv(path, index=False)
    with pytest.raises(DataError, match="no samples"):
        _build(tmp_path, name="t", kind="text_table", path=str(path))
    with pytest.raises(DataError, match="does not exist"):
        _build(tmp_path, name="t", kind="text_table", path=str(tmp_path / "missing.csv"))
    bad = tmp_path / "t.xlsx"
    bad.write_text("x")
    with pytest.raises(ConfigError, match=r"\.csv"):
        _build(tmp_path, name="t", kind="text_table", path=str(bad))
    pd.DataFrame({"id": ["a"], "text": ["x"], "label": ["maybe"]}).to_csv(path, index=False)
    with pytest.raises(DataError, match="not among the classes"):
        _build(tmp_path, name="t", kind="text_table", path=str(path), options={"classes": ["no", "yes"]})


def test_unknown_kind_names_the_choices(tmp_path: Path) -> None:
    spec = DatasetSpec.model_construct(name="x", kind="audio", path=None, options={}, limit=None, attribute_phrases={})
    with pytest.raises(ConfigError, match="unknown dataset kind 'audio'.*image_folder"):
        build_source(spec, cache_dir=tmp_path)


def test_shards_cover_all_samples_and_bad_index_is_an_error(tmp_path: Path) -> None:
    source = _build(tmp_path, name="g", kind="generated_text", options={"n": 25, "seed": 3})
    assert source.n_shards(10) == 3
    shards = [source.read_shard(i, 10) for i in range(3)]
    assert sum(len(s.ids) for s in shards) == 25
    assert [i for s in shards for i in s.ids] == source.ids()
    with pytest.raises(DataError, match="shard 3 does not exist.*0..2"):
        source.read_shard(3, 10)


def test_limit_is_a_deterministic_subset_and_fingerprint_changes_with_it(tmp_path: Path) -> None:
    full = _build(tmp_path, name="g", kind="generated_text", options={"n": 200})
    first = _build(tmp_path, name="g", kind="generated_text", options={"n": 200}, limit=50)
    again = _build(tmp_path, name="g", kind="generated_text", options={"n": 200}, limit=50)
    assert len(first.ids()) == 50
    assert first.ids() == again.ids()
    assert set(first.ids()) < set(full.ids())
    assert first.ids() != full.ids()[:50]  # a hash-ordered sample, not the head
    assert first.fingerprint == again.fingerprint != full.fingerprint


def test_fingerprint_is_stable_across_processes_and_follows_content(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    pd.DataFrame({"id": ["a", "b"], "text": ["one", "two"], "label": [0, 1]}).to_csv(path, index=False)
    spec = DatasetSpec(name="t", kind="text_table", path=str(path))
    here = build_source(spec, cache_dir=tmp_path).fingerprint
    code = (
        "import sys; from pathlib import Path; from llm2loss.config import DatasetSpec; "
        "from llm2loss.sources import build_source; "
        "print(build_source(DatasetSpec.model_validate_json(sys.argv[1]), cache_dir=Path('.')).fingerprint)"
    )
    out = subprocess.run([sys.executable, "-c", code, spec.model_dump_json()], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == here
    pd.DataFrame({"id": ["a", "b"], "text": ["one", "three"], "label": [0, 1]}).to_csv(path, index=False)
    assert build_source(spec, cache_dir=tmp_path).fingerprint != here


def test_generated_text_has_known_attributes(tmp_path: Path) -> None:
    source = _build(tmp_path, name="g", kind="generated_text", options={"n": 60, "seed": 1})
    shard = source.read_shard(0, 60)
    for text, old, woman, obj, label in zip(
        shard.inputs, shard.attributes["old"], shard.attributes["woman"], shard.attributes["object"], shard.labels
    ):
        assert ("old" in text) == old
        assert ("woman" in text) == woman
        assert obj in text
        assert ["bicycle", "guitar", "laptop", "umbrella", "camera"][label] == obj
    assert set(default_attribute_phrases(source.spec)) == {"old", "woman"}
    with pytest.raises(ConfigError, match="options.n"):
        _build(tmp_path, name="g", kind="generated_text", options={"n": 0})


def _image(path: Path, color: tuple[int, int, int], mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, (12, 9), color if mode == "RGB" else color[0]).save(path)


def test_image_folder_labels_by_folder_and_records_unreadable_images(tmp_path: Path) -> None:
    root = tmp_path / "pets"
    _image(root / "cat" / "c1.png", (255, 0, 0))
    _image(root / "cat" / "c2.jpg", (200, 0, 0), mode="L")
    _image(root / "dog" / "d1.png", (0, 0, 255))
    (root / "dog" / "broken.png").write_bytes(b"not a png")
    source = _build(tmp_path, name="pets", kind="image_folder", path=str(root))
    assert source.modality == "image"
    shard = source.read_shard(0, 10)
    assert shard.ids == ["cat/c1.png", "cat/c2.jpg", "dog/d1.png"]
    assert shard.labels.tolist() == [0, 0, 1]
    assert all(isinstance(im, Image.Image) and im.mode == "RGB" for im in shard.inputs)
    assert shard.attributes["class"].tolist() == ["cat", "cat", "dog"]
    assert len(shard.unreadable) == 1 and shard.unreadable[0][0] == "dog/broken.png"
    assert "unreadable image" in shard.unreadable[0][1]
    with pytest.raises(DataError, match="does not exist"):
        _build(tmp_path, name="pets", kind="image_folder", path=str(tmp_path / "nope"))


def test_image_manifest_with_attributes_relative_paths_and_failures(tmp_path: Path) -> None:
    _image(tmp_path / "img" / "a.png", (10, 20, 30))
    _image(tmp_path / "img" / "b.png", (40, 50, 60))
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame(
        {
            "id": ["a", "b", "c", "d"],
            "path": ["img/a.png", str(tmp_path / "img" / "b.png"), "img/missing.png", "img/a.png"],
            "label": ["cat", "dog", "dog", None],
            "smiling": [True, False, True, False],
        }
    ).to_csv(manifest, index=False)
    source = _build(tmp_path, name="m", kind="image_manifest", path=str(manifest))
    shard = source.read_shard(0, 10)
    assert shard.ids == ["a", "b"]
    assert shard.labels.tolist() == [0, 1]  # sorted class names: cat, dog
    assert shard.inputs[1].getpixel((0, 0)) == (40, 50, 60)
    assert shard.attributes["smiling"].tolist() == [True, False]
    reasons = dict(shard.unreadable)
    assert "image file not found" in reasons["c"] and reasons["d"] == "missing label"
