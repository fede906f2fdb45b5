"""open_clip model configs given in the encoder spec (`?config=<path>`), known in every process.

`open_clip.add_model_config` only registers a config in the calling process; Dask workers and
deployment runs are other processes. The spec carries the config file instead, and whichever
process builds the encoder registers it: a fresh interpreter gets the very same embeddings.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from llm2loss.encoders import build_encoder
from llm2loss.errors import ConfigError

HERE = Path(__file__).parent
NAME = "llm2loss-spec-config-clip"
REPO = HERE.parents[1]

_CHILD = """
import json, sys
import numpy as np
from PIL import Image
import open_clip
from llm2loss.encoders import build_encoder
assert sys.argv[2] not in open_clip.list_models()  # nothing registered before the spec
encoder = build_encoder(sys.argv[1], device="cpu")
images = [Image.new("RGB", (40, 30), (255, 0, 0)), Image.new("RGB", (16, 64), (0, 90, 200))]
print(json.dumps({"fingerprint": encoder.fingerprint, "dim": encoder.dim,
                  "images": encoder.encode_inputs(images).tolist(),
                  "text": encoder.encode_text(["a red square"]).tolist()}))
"""


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / f"{NAME}.json"
    shutil.copy(HERE / "tiny_clip.json", path)
    return path


def test_config_in_the_spec_builds_the_same_encoder_in_a_fresh_process(config_file: Path) -> None:
    spec = f"open_clip:{NAME}?config={config_file}"
    here = build_encoder(spec, device="cpu")
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, spec, NAME], cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert child.returncode == 0, child.stderr[-2000:]
    there = json.loads(child.stdout.strip().splitlines()[-1])
    assert there["fingerprint"] == here.fingerprint and there["dim"] == here.dim == 32
    images = [Image.new("RGB", (40, 30), (255, 0, 0)), Image.new("RGB", (16, 64), (0, 90, 200))]
    np.testing.assert_allclose(np.array(there["images"]), here.encode_inputs(images), atol=1e-5)
    np.testing.assert_allclose(np.array(there["text"]), here.encode_text(["a red square"]), atol=1e-5)
    # registering the same config again is a no-op: the encoder builds again without complaint
    assert build_encoder(spec, device="cpu") is here


def test_another_config_gives_another_fingerprint(tmp_path: Path, config_file: Path) -> None:
    wider = json.loads(config_file.read_text())
    wider["embed_dim"] = 48
    other_name = f"{NAME}-wide"
    other = tmp_path / "wide" / f"{other_name}.json"
    other.parent.mkdir()
    other.write_text(json.dumps(wider))
    a = build_encoder(f"open_clip:{NAME}?config={config_file}", device="cpu")
    b = build_encoder(f"open_clip:{other_name}?config={other}", device="cpu")
    assert b.dim == 48 and a.fingerprint != b.fingerprint


def test_bad_config_files_are_refused_with_the_fix(tmp_path: Path, config_file: Path) -> None:
    with pytest.raises(ConfigError, match=f"named {NAME}-x.json.*rename"):
        build_encoder(f"open_clip:{NAME}-x?config={config_file}", device="cpu")
    with pytest.raises(ConfigError, match="does not exist.*absolute path"):
        build_encoder(f"open_clip:absent-clip?config={tmp_path / 'absent-clip.json'}", device="cpu")
    broken = tmp_path / "broken-clip.json"
    broken.write_text("{not json")
    with pytest.raises(ConfigError, match="not readable JSON"):
        build_encoder(f"open_clip:broken-clip?config={broken}", device="cpu")
    partial = tmp_path / "partial-clip.json"
    partial.write_text(json.dumps({"embed_dim": 8}))
    with pytest.raises(ConfigError, match=r"lacks \['vision_cfg', 'text_cfg'\]"):
        build_encoder(f"open_clip:partial-clip?config={partial}", device="cpu")
    clash = tmp_path / "ViT-B-32.json"
    shutil.copy(config_file, clash)
    with pytest.raises(ConfigError, match="different model named 'ViT-B-32'.*another name"):
        build_encoder(f"open_clip:ViT-B-32?config={clash}", device="cpu")


def test_unknown_model_error_names_the_config_option() -> None:
    with pytest.raises(ConfigError, match=r"\?config=<path>\.json"):
        build_encoder("open_clip:no-such-clip-model", device="cpu")
