"""Train the image classifier of a vision example release and save its weights as safetensors.

The release.json says everything: the entrypoint (a torchvision ResNet-18 from llm2loss.example_models.vision
with its preprocess), the dataset (a torchvision dataset in its on-disk layout under
`dataset.path`) and the label. This script trains on the dataset's *train* split (the audit runs
on the split the release names, "test"), with plain SGD and the model's own preprocess, and writes
the state dict to `--out`, ready for `llm2loss register <release.json> --weights <out>`.

    python examples/vision/train_classifier.py examples/vision/cifar10/release.json \
        --download --epochs 15 --out resnet18-cifar10.safetensors

`--download` lets torchvision fetch the dataset into `dataset.path` first (needs internet; CelebA
downloads from Google Drive are often rate-limited: then place the files by hand). `--data`
overrides `dataset.path`; `--limit` trains on a deterministic subset (quick checks).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

from llm2loss.config import ReleaseSpec
from llm2loss.errors import ConfigError
from llm2loss.losses import load_model
from llm2loss.sources import build_source

TORCHVISION_DOWNLOADS = ("CIFAR10", "CIFAR100", "CelebA")


def read_release(path: Path) -> ReleaseSpec:
    """The release.json at `path`, validated."""
    if not path.is_file():
        raise ConfigError(f"release file {path} does not exist; give the path of a release.json")
    return ReleaseSpec.model_validate_json(path.read_text(encoding="utf-8"))


def training_release(release: ReleaseSpec, *, data: str | None, limit: int | None) -> ReleaseSpec:
    """The release, untrained (no weights), reading the train split (`data`/`limit` applied)."""
    dataset = release.dataset.model_copy(update={
        "options": {**release.dataset.options, "split": "train"},
        "path": data if data is not None else release.dataset.path,
        "limit": limit,
    })
    return release.model_copy(update={"dataset": dataset, "weights": None})


def download(release: ReleaseSpec) -> None:
    """Let torchvision fetch the release's dataset (train and test) into `dataset.path`."""
    from torchvision import datasets

    name = release.dataset.options.get("name")
    if release.dataset.kind != "torchvision" or name not in TORCHVISION_DOWNLOADS:
        raise ConfigError(f"--download handles torchvision datasets {list(TORCHVISION_DOWNLOADS)}; "
                          f"this release's dataset is {release.dataset.kind} {name!r}: place it by hand")
    root = str(Path(release.dataset.path or ".").expanduser())
    if name == "CelebA":
        datasets.CelebA(root, split="all", download=True)
        return
    for train in (True, False):
        getattr(datasets, name)(root, train=train, download=True)


def train(release: ReleaseSpec, *, epochs: int, batch_size: int, lr: float, seed: int,
          cache_dir: Path, log=print) -> nn.Module:
    """Train the release's model on its (train-split) dataset; returns the module (eval mode)."""
    torch.manual_seed(seed)
    model = load_model(release, weights_path=None).model
    source = build_source(release.dataset, cache_dir=cache_dir)
    device = next(model.parameters()).device
    shards = [source.read_shard(i, 4096) for i in range(source.n_shards(4096))]
    pixels = torch.stack([model.preprocess(img) for s in shards for img in s.inputs])
    labels = torch.as_tensor(np.concatenate([s.labels for s in shards]).astype(np.int64))
    optimiser = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=max(epochs, 1))
    generator = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        model.train()
        started, total = time.perf_counter(), 0.0
        for batch in torch.randperm(len(labels), generator=generator).split(batch_size):
            x, y = pixels[batch].to(device), labels[batch].to(device)
            loss = nn.functional.cross_entropy(model(x), y)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(batch)
        schedule.step()
        log(f"epoch {epoch + 1}/{epochs}: mean loss {total / len(labels):.4f} "
            f"({time.perf_counter() - started:.0f} s)")
    return model.eval()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("release", type=Path, help="the example's release.json")
    parser.add_argument("--out", type=Path, required=True, help="weights file to write (.safetensors)")
    parser.add_argument("--data", default=None, help="dataset root (default: the release's dataset.path)")
    parser.add_argument("--download", action="store_true", help="fetch the dataset with torchvision first")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--limit", type=int, default=None, help="train on at most this many images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", type=Path, default=Path("~/.cache/llm2loss").expanduser())
    args = parser.parse_args(argv)
    release = training_release(read_release(args.release), data=args.data, limit=args.limit)
    if args.download:
        download(release)
    model = train(release, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                  seed=args.seed, cache_dir=args.cache_dir)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(args.out), metadata={"model": release.model, "version": release.version})
    print(f"wrote {args.out}: register it with "
          f"`llm2loss register {args.release} --weights {args.out}`")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
