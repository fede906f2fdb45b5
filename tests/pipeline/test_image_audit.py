"""An image release audited end to end: Prefect flow, Dask LocalCluster workers, SeaweedFS store.

The release is real and small: a ResNet-18 from the torchvision zoo (3 classes, 32 px) trained
for a few steps on generated PNGs of coloured shapes, so it has real, uneven per-sample losses;
the images are listed in an image_manifest with two boolean attributes (dark background, small
shape) so the attribute analysis runs. The encoder is a tiny open_clip model whose JSON config
travels in the encoder spec (`?config=`), because the Dask worker processes that build it never
saw an `open_clip.add_model_config` of the test process.
"""

from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image, ImageDraw
from safetensors.torch import save_file

from llm2loss import pipeline as stages
from llm2loss import registry
from llm2loss.store import keys as layout
from llm2loss.config import AuditSettings, DaskSettings, DatasetSpec, DiagnoserSettings, ReleaseSpec, Settings, StoreSettings
from llm2loss.example_models.vision import resnet18

pytestmark = pytest.mark.integration

CLASSES = ["circle", "square", "triangle"]
N_IMAGES = 90
SHARD_SIZE = 40
IMAGE_SIZE = 32
TINY_CLIP = "llm2loss-image-audit-clip"
TINY_CLIP_CONFIG = Path(__file__).parents[1] / "inputs" / "tiny_clip.json"
ENTRY_KWARGS = {"num_classes": len(CLASSES), "image_size": IMAGE_SIZE}


def draw_shape(shape: str, *, dark: bool, small: bool, rng: np.random.Generator) -> Image.Image:
    """One 48 px image: a coloured shape on a dark or light background, small or large."""
    background = tuple(int(v) for v in rng.integers(0, 60, 3)) if dark else tuple(int(v) for v in rng.integers(190, 256, 3))
    colour = tuple(int(v) for v in rng.integers(60, 190, 3))
    image = Image.new("RGB", (48, 48), background)
    draw = ImageDraw.Draw(image)
    half = 7 if small else 18
    cx, cy = (int(v) for v in rng.integers(half + 2, 48 - half - 2, 2))
    box = (cx - half, cy - half, cx + half, cy + half)
    if shape == "circle":
        draw.ellipse(box, fill=colour)
    elif shape == "square":
        draw.rectangle(box, fill=colour)
    else:
        draw.polygon([(cx, cy - half), (cx - half, cy + half), (cx + half, cy + half)], fill=colour)
    return image


def write_image_dataset(root: Path, n: int, seed: int = 0) -> Path:
    """PNGs in one folder per class plus manifest.csv (id, path, label, dark, small); its path."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        label = CLASSES[i % len(CLASSES)]
        dark, small = bool(rng.random() < 0.4), bool(rng.random() < 0.4)
        path = Path(label) / f"{label}-{i:03d}.png"
        (root / label).mkdir(parents=True, exist_ok=True)
        draw_shape(label, dark=dark, small=small, rng=rng).save(root / path)
        rows.append({"id": f"img-{i:03d}", "path": path.as_posix(), "label": label, "dark": dark, "small": small})
    manifest = root / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    return manifest


def train_classifier(manifest: Path, out: Path, *, steps: int = 12, seed: int = 0) -> Path:
    """A few Adam steps of the example ResNet-18 on the images; weights as safetensors."""
    torch.manual_seed(seed)
    model = resnet18(**ENTRY_KWARGS)
    frame = pd.read_csv(manifest)
    x = torch.stack([model.preprocess(Image.open(manifest.parent / p).convert("RGB")) for p in frame["path"]])
    y = torch.tensor([CLASSES.index(c) for c in frame["label"]])
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for step in range(steps):
        batch = torch.arange(step * 30, step * 30 + 30) % len(y)
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
        optimiser.step()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out))
    return out


@pytest.fixture(scope="module")
def image_release(tmp_path_factory: pytest.TempPathFactory) -> tuple[ReleaseSpec, Path]:
    """The generated images, the trained classifier and the release that audits it."""
    root = tmp_path_factory.mktemp("shapes")
    manifest = write_image_dataset(root / "images", N_IMAGES)
    config = root / f"{TINY_CLIP}.json"
    shutil.copy(TINY_CLIP_CONFIG, config)
    weights = train_classifier(manifest, root / "shapes-resnet18.safetensors")
    release = ReleaseSpec(
        model="shapes-classifier",
        version="v1",
        entrypoint="llm2loss.example_models.vision:resnet18",
        dataset=DatasetSpec(
            name="shapes",
            kind="image_manifest",
            path=str(manifest),
            options={"classes": CLASSES, "attribute_columns": ["dark", "small"]},
            attribute_phrases={"dark": ("a shape on a dark background", "a shape on a light background"),
                               "small": ("a small shape", "a large shape")},
        ),
        task="multiclass",
        classes=CLASSES,
        encoder=f"open_clip:{TINY_CLIP}?config={config}",
        created_at=datetime(2024, 1, 1, tzinfo=timezone.utc),
        metadata={"entrypoint_kwargs": ENTRY_KWARGS},
    )
    return release, weights


def test_image_release_audits_end_to_end_on_dask_and_seaweedfs(
    prefect_server, s3_store, dask_cluster, cache_dir, image_release
):
    from flows.audit import audit_release
    from flows.runtime import make_task_runner

    release, weights = image_release
    store_settings = StoreSettings(uri=s3_store.uri, endpoint_url=s3_store.endpoint_url)
    cfg = Settings(
        store=store_settings,
        dask=DaskSettings(address=dask_cluster.scheduler_address),
        audit=AuditSettings(shard_size=SHARD_SIZE, diagnosers=DiagnoserSettings(n_members=3)),
        cache_dir=str(cache_dir),
    )
    store = stages.get_store(store_settings)
    registry.register(store, release, weights_file=weights)

    flow = audit_release.with_options(task_runner=make_task_runner(cfg.dask))
    state = flow(model=release.model, version=release.version, settings=cfg.model_dump(mode="json"),
                 return_state=True)
    assert state.is_completed(), state.message
    manifest = state.result()

    assert manifest["status"] == "completed"
    assert store.exists(layout.audit_manifest_key(release.model, release.version))
    assert store.exists(manifest["report"]) and store.exists(manifest["metrics"])
    assert manifest["encoder"] == release.encoder
    n_parts = -(-N_IMAGES // SHARD_SIZE)
    emb = store.read_stage_manifest(manifest["embeddings"])
    losses = store.read_stage_manifest(manifest["losses"])
    assert len(emb["parts"]) == n_parts and len(losses["parts"]) == n_parts

    expected_ids = {f"img-{i:03d}" for i in range(N_IMAGES)}
    loss_table = store.read_stage_table(manifest["losses"])
    emb_ids = store.read_stage_table(manifest["embeddings"], columns=["id"]).column("id").to_pylist()
    loss_ids = loss_table.column("id").to_pylist()
    assert sorted(loss_ids) == sorted(emb_ids) == sorted(expected_ids)  # every id, once
    assert manifest["summary"]["samples_used"] == N_IMAGES and manifest["summary"]["samples_skipped"] == 0
    loss = np.asarray(loss_table.column("loss").to_pylist())
    assert np.isfinite(loss).all() and loss.std() > 0  # a real model's uneven per-sample losses
    assert {"attr__dark", "attr__small"} <= set(loss_table.column_names)

    metrics = store.read_json(manifest["metrics"])
    assert metrics["data"]["modality"] == "image" and metrics["data"]["gap"] == "center"
    assert metrics["data"]["dim"] == 32
    assert metrics["diagnosers"] and all(d["gap"] == "center" for d in metrics["diagnosers"].values())
    assert metrics["split"]["train"] + metrics["split"]["test"] == N_IMAGES
    assert metrics["attributes"]["available"]
    assert {row["attribute"] for row in metrics["attributes"]["rows"]} == {"dark", "small"}
    assert metrics["summary"]["encoder"] == release.encoder
