"""Everything the image benchmark audits, built once into a cache folder: CLIP, images, CNN.

`build(folder, scale)` makes (or reuses) in `folder`:

- `clip/`   the small CLIP (`image_clip`): `shapes-clip.json` + `shapes-clip.safetensors`;
- `audit/`  the audit set: uniform scenes as PNGs + `manifest.csv` (`image_data`), drawn with
  `AUDIT_SEED`; `build(..., audit_seed=s)` draws another audit set of the same world into
  `audit-seed<s>/` (same CLIP, same CNN), on which the head variants are checked a second time;
- `cnn.safetensors` the audited ResNet-18 with planted failure slices (`image_model`);

each step skipped when its output and a `built.json` stamp of the same parameters exist. Scales:
`full` (the benchmark; `make image-bench-data` builds it into ~/.cache/llm2loss/image_bench/)
and `tiny` (a few hundred images and seconds of training, for the end-to-end test).
`image_release(data)` is the release that audits the CNN on the audit set with that CLIP.

Run: `python benchmarks/image_bench_data.py [--scale full|tiny] [--folder DIR] [--audit-seed S]`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

import image_clip  # noqa: E402
import image_data  # noqa: E402
import image_model  # noqa: E402

CACHE = Path(os.environ.get("LLM2LOSS_CACHE_DIR", "~/.cache/llm2loss")).expanduser() / "image_bench"


@dataclass(frozen=True)
class Scale:
    """How much of everything: CLIP training, audit set, CNN training."""

    clip_images: int
    clip_epochs: int
    audit_images: int
    cnn_images: int
    cnn_epochs: int


SCALES = {
    "full": Scale(clip_images=3000, clip_epochs=16, audit_images=3000, cnn_images=4000, cnn_epochs=4),
    "tiny": Scale(clip_images=256, clip_epochs=1, audit_images=240, cnn_images=192, cnn_epochs=1),
}
AUDIT_SEED = 3


@dataclass(frozen=True)
class BenchData:
    """Paths of one built benchmark (absolute), its scale and the seed of its audit set."""

    folder: Path
    scale: str
    clip: image_clip.ClipCheckpoint
    manifest: Path
    cnn_weights: Path
    audit_seed: int = AUDIT_SEED


def _stamped(path: Path, stamp: dict) -> bool:
    return path.is_file() and json.loads(path.read_text()) == stamp


def _record_time(folder: Path, step: str, seconds: float) -> None:
    path = folder / "build-times.json"
    times = json.loads(path.read_text()) if path.is_file() else {}
    times[step] = seconds
    path.write_text(json.dumps(times))


def build_times(data: BenchData) -> dict[str, float]:
    """Seconds each training step took when it was last built (empty when not recorded)."""
    path = data.folder / "build-times.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def audit_folder(audit_seed: int) -> str:
    """The audit set's folder name: `audit` for `AUDIT_SEED`, `audit-seed<s>` for another seed."""
    return "audit" if audit_seed == AUDIT_SEED else f"audit-seed{audit_seed}"


def build(folder: Path = CACHE, scale: str = "full", *, audit_seed: int = AUDIT_SEED, log=print) -> BenchData:
    """Build (or reuse) the CLIP, the audit images (drawn with `audit_seed`) and the CNN of
    `scale` in `folder`."""
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}: choose one of {sorted(SCALES)}")
    if isinstance(audit_seed, bool) or not isinstance(audit_seed, int) or audit_seed < 0:
        raise ValueError(f"audit_seed must be a non-negative integer, got {audit_seed!r}")
    folder = folder.expanduser().resolve() / scale
    params = SCALES[scale]
    folder.mkdir(parents=True, exist_ok=True)
    clip = image_clip.checkpoint_in(folder / "clip")
    clip_stamp = {"config": image_clip.CONFIG, "n": params.clip_images, "epochs": params.clip_epochs,
                  "distractors": image_clip.DISTRACTORS}
    if not (clip.exists() and _stamped(folder / "clip" / "built.json", clip_stamp)):
        started = time.perf_counter()
        image_clip.train_clip(folder / "clip", n_images=params.clip_images, epochs=params.clip_epochs,
                              log=log)
        (folder / "clip" / "built.json").write_text(json.dumps(clip_stamp))
        _record_time(folder, "CLIP training", time.perf_counter() - started)
        log(f"CLIP trained in {time.perf_counter() - started:.0f} s")
    audit = folder / audit_folder(audit_seed)
    manifest = audit / "manifest.csv"
    audit_stamp = {"n": params.audit_images, "seed": audit_seed}
    if not (manifest.is_file() and _stamped(audit / "built.json", audit_stamp)):
        attributes = image_data.sample_attributes(params.audit_images, np.random.default_rng(audit_seed))
        image_data.write_dataset(audit, attributes, seed=audit_seed)
        (audit / "built.json").write_text(json.dumps(audit_stamp))
        log(f"wrote {params.audit_images} audit images (seed {audit_seed})")
    cnn = folder / "cnn.safetensors"
    cnn_stamp = {"n": params.cnn_images, "epochs": params.cnn_epochs, "planted": list(image_model.PLANTED)}
    if not (cnn.is_file() and _stamped(folder / "cnn.json", cnn_stamp)):
        started = time.perf_counter()
        image_model.train_cnn(cnn, n_train=params.cnn_images, epochs=params.cnn_epochs, log=log)
        (folder / "cnn.json").write_text(json.dumps(cnn_stamp))
        _record_time(folder, "CNN training", time.perf_counter() - started)
        log(f"CNN trained in {time.perf_counter() - started:.0f} s")
    return BenchData(folder, scale, clip, manifest, cnn, audit_seed)


def image_release(data: BenchData, *, model: str = "shapes-cnn", version: str = "v1"):
    """The release that audits the CNN of `data` on its audit set with its CLIP."""
    from llm2loss.config import DatasetSpec, ReleaseSpec

    return ReleaseSpec(
        model=model,
        version=version,
        entrypoint=image_model.ENTRYPOINT,
        dataset=DatasetSpec(
            name=f"shapes-{data.scale}",
            kind="image_manifest",
            path=str(data.manifest),
            options={"classes": list(image_data.SHAPES),
                     "attribute_columns": list(image_data.BOOL_ATTRIBUTES)},
            attribute_phrases=image_data.ATTRIBUTE_PHRASES,
        ),
        task="multiclass",
        classes=list(image_data.SHAPES),
        encoder=data.clip.spec,
        created_at=datetime(2026, 1, 1, tzinfo=timezone.utc),
        metadata={"entrypoint_kwargs": image_model.ENTRY_KWARGS, "planted": list(image_model.PLANTED)},
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", default="full", choices=sorted(SCALES))
    ap.add_argument("--folder", type=Path, default=CACHE)
    ap.add_argument("--audit-seed", type=int, default=AUDIT_SEED,
                    help="seed of the audit set to build beside the CLIP and the CNN")
    args = ap.parse_args()
    data = build(args.folder, args.scale, audit_seed=args.audit_seed)
    print(json.dumps({k: str(v) for k, v in asdict(data).items()}, indent=2))
    print(f"encoder spec: {data.clip.spec}")


if __name__ == "__main__":
    main()
