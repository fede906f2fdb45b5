"""The audited model of the image benchmark: a torchvision ResNet-18 that tells the shape.

It is the example models' `llm2loss.example_models.vision:resnet18` entrypoint (3 classes, 32 px), so the release is
loaded in the Dask workers exactly like a user's. Its training set has two planted failure slices:

- under-represented: small shapes on a dark background are cut to `RARE_KEEP` of their share;
- noisy: striped blue shapes have their label replaced by a random shape with `NOISE_RATE`.

On the uniform audit set the model therefore loses more on small, dark, striped and blue
(= not red) images: these are the disparities the audit should find. `planted_training_set`
draws the training attributes and labels; `train_cnn` trains and saves safetensors.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

import image_data

ENTRYPOINT = "llm2loss.example_models.vision:resnet18"
ENTRY_KWARGS = {"num_classes": len(image_data.SHAPES), "image_size": image_data.SIZE}
RARE_KEEP = 0.05
NOISE_RATE = 0.7
PLANTED = ("small & dark: under-represented (5 % of their share in training)",
           "striped & blue: 70 % of training labels replaced by a random shape")


def planted_training_set(n: int, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
    """About `n` training rows with the planted slices, and their (partly noisy) label indices."""
    frame = image_data.sample_attributes(int(n * 1.2), rng)
    rare = frame["small"] & frame["dark"]
    frame = frame[~rare | (rng.random(len(frame)) < RARE_KEEP)].head(n).reset_index(drop=True)
    labels = np.array([image_data.SHAPES.index(s) for s in frame["shape"]])
    noisy = (frame["striped"] & ~frame["red"]).to_numpy() & (rng.random(len(frame)) < NOISE_RATE)
    labels[noisy] = rng.integers(0, len(image_data.SHAPES), int(noisy.sum()))
    return frame, labels


def train_cnn(out: Path, *, n_train: int = 4000, epochs: int = 4, batch_size: int = 64,
              seed: int = 0, threads: int = 1, log=print) -> Path:
    """Train the example ResNet-18 on the planted training set; its state dict as safetensors at `out`.

    `threads` caps torch's intra-op threads (see `image_clip.train_clip`: one is faster when shared).
    """
    import torch
    from safetensors.torch import save_file

    torch.set_num_threads(threads)
    from llm2loss.example_models.vision import resnet18

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    frame, labels = planted_training_set(n_train, rng)
    model = resnet18(**ENTRY_KWARGS)
    x = torch.stack([model.preprocess(im) for im in image_data.render(frame, seed=20_000 + seed)])
    y = torch.from_numpy(labels)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    started = time.perf_counter()
    model.train()
    for epoch in range(epochs):
        order = torch.from_numpy(rng.permutation(len(y)))
        total = 0.0
        for start in range(0, len(y), batch_size):
            batch = order[start:start + batch_size]
            loss = torch.nn.functional.cross_entropy(model(x[batch]), y[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(batch)
        log(f"cnn epoch {epoch + 1}/{epochs}: train loss {total / len(y):.3f} "
            f"({time.perf_counter() - started:.0f} s)")
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out))
    return out
