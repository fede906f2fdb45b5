"""A small CLIP trained here, on CPU, on the generated shape images and their captions.

The model is open_clip's own `CLIP` class built from a tiny config (`CONFIG`: a one-block-per-
stage ModifiedResNet on 32 px images and a 2-layer text transformer with open_clip's BPE
tokenizer), trained with open_clip's `ClipLoss`. It is saved the way a user's checkpoint would be: `<name>.json` (the open_clip model
config) beside `<name>.safetensors` (the state dict), and llm2loss loads it by path with

    open_clip:<name>//<dir>/<name>.safetensors?config=<dir>/<name>.json

The config file travels in the spec because `open_clip.add_model_config` in one process does not
reach another (the Dask workers that embed the shards build the encoder themselves).

`train_clip` trains and saves (captions are drawn afresh each epoch from `image_data.caption`;
a quarter more pairs are clutter images with captions of random tokens, so that words the shape
captions never use do not all collapse onto the generic caption; see its docstring);
`zero_shot_accuracy` scores an llm2loss encoder on every attribute of held-out images by the
nearest of the attribute's prompts (`image_data.ZERO_SHOT_PROMPTS`: each value said of one shape
and of two, as the captions say it).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

import image_data

if TYPE_CHECKING:  # torch is imported where it is used: importing it costs seconds
    import torch

NAME = "shapes-clip"
DISTRACTORS = 0.25
SOT, EOT = 49406, 49407  # open_clip's BPE start / end of text tokens
CONFIG = {
    "embed_dim": 64,
    # open_clip's ModifiedResNet with one block per stage: on 2 CPU cores a step is ~10x
    # cheaper than a ViT of similar size, and convolutions learn these scenes in few epochs
    "vision_cfg": {"image_size": image_data.SIZE, "layers": [1, 1, 1, 1], "width": 16},
    "text_cfg": {"context_length": 20, "vocab_size": 49408, "width": 96, "heads": 3, "layers": 2,
                 "mlp_ratio": 2.0},
}


@dataclass(frozen=True)
class ClipCheckpoint:
    """Where a trained CLIP lives, and the llm2loss encoder spec that loads it."""

    config: Path
    weights: Path

    @property
    def spec(self) -> str:
        return f"open_clip:{NAME}/{self.weights}?config={self.config}"

    def exists(self) -> bool:
        return self.config.is_file() and self.weights.is_file()


def checkpoint_in(folder: Path) -> ClipCheckpoint:
    """The checkpoint paths of the CLIP kept in `folder` (absolute: every worker reads them)."""
    folder = folder.expanduser().resolve()
    return ClipCheckpoint(folder / f"{NAME}.json", folder / f"{NAME}.safetensors")


def distractor_tokens(n: int, rng: np.random.Generator, context_length: int) -> torch.Tensor:
    """`n` captions of 2-7 random BPE tokens (start and end tokens around them, zero padding)."""
    import torch

    tokens = torch.zeros((n, context_length), dtype=torch.long)
    for i in range(n):
        k = int(rng.integers(2, 8))
        tokens[i, 0] = SOT
        tokens[i, 1:k + 1] = torch.from_numpy(rng.integers(256, SOT, k))
        tokens[i, k + 1] = EOT
    return tokens


def train_clip(folder: Path, *, n_images: int = 3000, epochs: int = 16, batch_size: int = 64,
               lr: float = 2e-3, distractors: float = DISTRACTORS, seed: int = 0, threads: int = 1,
               log=print) -> ClipCheckpoint:
    """Train the CLIP on `n_images` fresh uniform scenes and save config + safetensors in `folder`.

    `distractors`: a share of extra pairs of clutter images (`image_data.draw_clutter`) and
    captions of random BPE tokens, drawn afresh each epoch. Without them the text tower only ever
    sees the shape vocabulary: every other word keeps an untrained (decayed) embedding, so a phrase
    such as "a bowl of soup" lands on the generic caption, at the centre of the images, and looks
    *more* familiar than "a red circle". With them, words outside the captions are pulled toward
    images that are not shape scenes, as a CLIP trained on the world would place them.

    `threads` caps torch's intra-op threads: on a shared 2-core machine one thread measured
    0.7 s per step and two threads 10 s (OpenMP workers waiting on each other when oversubscribed).
    """
    import open_clip
    import torch
    from safetensors.torch import save_file

    torch.set_num_threads(threads)
    target = checkpoint_in(folder)
    target.config.parent.mkdir(parents=True, exist_ok=True)
    target.config.write_text(json.dumps(CONFIG, indent=2))
    if open_clip.get_model_config(NAME) is None:
        open_clip.add_model_config(target.config)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model, _, preprocess = open_clip.create_model_and_transforms(NAME)
    tokenizer = open_clip.get_tokenizer(NAME)
    attributes = image_data.sample_attributes(n_images, rng)
    n_clutter = int(round(distractors * n_images))
    pixels = torch.stack([preprocess(im) for im in [
        *image_data.render(attributes, seed=10_000 + seed),
        *(image_data.draw_clutter(30_000 + seed * 1_000_003 + i) for i in range(n_clutter))]])
    rows = attributes.to_dict("records")
    context = CONFIG["text_cfg"]["context_length"]
    n_pairs = n_images + n_clutter
    steps_per_epoch = math.ceil(n_pairs / batch_size)
    total = steps_per_epoch * epochs
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.1)
    warmup = max(1, total // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    loss_fn = open_clip.ClipLoss()
    model.train()
    started = time.perf_counter()
    for epoch in range(epochs):
        tokens = tokenizer([image_data.caption(r, rng) for r in rows])
        tokens = torch.cat([tokens, distractor_tokens(n_clutter, rng, context)])
        order = torch.from_numpy(rng.permutation(n_pairs))
        running = 0.0
        for step in range(steps_per_epoch):
            batch = order[step * batch_size:(step + 1) * batch_size]
            image_f, text_f, scale = model(pixels[batch], tokens[batch])
            loss = loss_fn(image_f, text_f, scale)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            running += float(loss.detach())
        if epoch % 2 == 1 or epoch == epochs - 1:
            log(f"clip epoch {epoch + 1}/{epochs}: contrastive loss {running / steps_per_epoch:.3f} "
                f"({time.perf_counter() - started:.0f} s)")
    model.eval()
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(target.weights))
    return target


def zero_shot_accuracy(encoder, images: list, attributes: pd.DataFrame,
                       prompts: dict[str, list[tuple[str, ...]]] | None = None) -> dict[str, float]:
    """Per attribute (and `mean`): share of images whose nearest prompt describes their own value.

    `prompts` (default `image_data.ZERO_SHOT_PROMPTS`): per attribute, per value, its prompts.
    """
    prompts = image_data.ZERO_SHOT_PROMPTS if prompts is None else prompts
    X = encoder.encode_inputs(images)
    out: dict[str, float] = {}
    for name, values in prompts.items():
        flat = [p for value in values for p in value]
        value_of = np.repeat(np.arange(len(values)), [len(v) for v in values])
        predicted = value_of[(X @ encoder.encode_text(flat).T).argmax(axis=1)]
        if name == "shape":
            truth = np.array([image_data.SHAPES.index(s) for s in attributes["shape"]])
        else:
            truth = np.where(attributes[name].to_numpy(dtype=bool), 0, 1)
        out[name] = float((predicted == truth).mean())
    out["mean"] = float(np.mean(list(out.values())))
    return out
