"""open_clip encoders: images through the model's own preprocess, text through its tokenizer.

Spec: `open_clip:<model>/<pretrained>` where `pretrained` is an open_clip tag (e.g. `openai`,
`laion2b_s34b_b79k`) or a local checkpoint file (.safetensors, .pt, .bin), or `open_clip:<model>`
alone for a randomly initialised model (seeded, so deterministic; useful for tests). Options:
`fp16=1` (half precision on CUDA), `quick_gelu=1` (force QuickGELU for a local checkpoint that
was trained with it; tags that need it, such as ViT-B-32 + openai, get it automatically),
`config=<path/to/<model>.json>` (an open_clip model config file, registered with open_clip in
whichever process builds the encoder, e.g. `open_clip:tiny-clip?config=/cfg/tiny-clip.json`).
The config travels inside the spec string because `open_clip.add_model_config` in one process
does not reach another (a Dask worker, a deployment run).

Weights are never fetched silently for long: with no network the hub fails fast and the error
says how to point at a local checkpoint instead.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from llm2loss.encoders.base import EncoderSpec, check_texts, l2_normalise, short_hash
from llm2loss.errors import ConfigError, DataError, WeightsError
from llm2loss.store.hashing import file_sha256

RANDOM_INIT_SEED = 0
_HUB_TIMEOUTS = {"HF_HUB_ETAG_TIMEOUT": "5", "HF_HUB_DOWNLOAD_TIMEOUT": "10"}


@contextmanager
def _short_hub_timeouts() -> Iterator[None]:
    """Cap the hub's network timeouts (unless the user set them) so offline failure is fast."""
    added = {k: v for k, v in _HUB_TIMEOUTS.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


class OpenClipEncoder:
    """An open_clip model used as an image and text encoder (eval mode, no grad, batched)."""

    modality = "image"

    def __init__(self, spec: EncoderSpec, *, device: str, batch_size: int = 64) -> None:
        import open_clip
        import torch

        model_name, _, pretrained = spec.target.partition("/")
        if "config" in spec.options:
            register_model_config(model_name, spec.options["config"])
        if model_name not in open_clip.list_models():
            raise ConfigError(
                f"unknown open_clip model {model_name!r}: choose one of open_clip.list_models() "
                f"(e.g. 'ViT-B-32') or give its config file as 'open_clip:{model_name}?config=<path>.json'"
            )
        weights = pretrained or None
        quick_gelu = spec.flag("quick_gelu") or _tag_needs_quick_gelu(model_name, weights)
        precision = "fp16" if spec.flag("fp16") and device.startswith("cuda") else "fp32"
        self.model, self.preprocess = _create(model_name, weights, quick_gelu, device, precision)
        self.model.eval()
        self.tokenizer = open_clip.get_tokenizer(model_name)
        self.device = device
        self.batch_size = batch_size
        self.name = f"open_clip:{spec.target}"
        self.dim = int(open_clip.get_model_config(model_name)["embed_dim"])
        self.fingerprint = short_hash(
            "open_clip", open_clip.__version__, model_name, _weights_identity(model_name, weights),
            f"quick_gelu={quick_gelu}", precision, repr(self.preprocess),
        )
        self._torch = torch

    def encode_inputs(self, batch: list[Any]) -> np.ndarray:
        """PIL images -> (n, dim) float32, unit norm."""
        if not batch:
            return np.zeros((0, self.dim), dtype=np.float32)
        outs = []
        with self._torch.no_grad():
            for start in range(0, len(batch), self.batch_size):
                chunk = batch[start : start + self.batch_size]
                try:
                    pixels = self._torch.stack([self.preprocess(image) for image in chunk])
                except (TypeError, AttributeError) as exc:
                    raise DataError(
                        f"open_clip encoder takes PIL images, got {type(chunk[0]).__name__} ({exc})"
                    ) from None
                dtype = next(self.model.parameters()).dtype
                outs.append(self.model.encode_image(pixels.to(self.device, dtype)).float().cpu().numpy())
        return l2_normalise(np.concatenate(outs))

    def encode_text(self, texts: list[str]) -> np.ndarray:
        """Phrases -> (n, dim) float32, unit norm (same space as the images)."""
        check_texts(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        outs = []
        with self._torch.no_grad():
            for start in range(0, len(texts), self.batch_size):
                tokens = self.tokenizer(texts[start : start + self.batch_size]).to(self.device)
                outs.append(self.model.encode_text(tokens).float().cpu().numpy())
        return l2_normalise(np.concatenate(outs))


def register_model_config(model_name: str, config_path: str) -> None:
    """Make `model_name` known to open_clip in this process, from its JSON config file.

    The file must be named `<model_name>.json` (open_clip names configs after their file) and hold
    `embed_dim`, `vision_cfg` and `text_cfg`. Registering the same config again is a no-op; a
    different config under a name open_clip already knows is refused rather than silently swapped.
    """
    import open_clip

    path = Path(config_path).expanduser().resolve()
    if path.stem != model_name or path.suffix != ".json":
        raise ConfigError(
            f"open_clip config {config_path!r} must be a file named {model_name}.json "
            f"(open_clip names a model after its config file): rename it or the model in the spec"
        )
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"open_clip config file {str(path)!r} does not exist: give an absolute path that every "
            "worker process can read"
        ) from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"open_clip config {str(path)!r} is not readable JSON ({exc}): fix the file") from None
    missing = [k for k in ("embed_dim", "vision_cfg", "text_cfg") if not isinstance(config, dict) or k not in config]
    if missing:
        raise ConfigError(
            f"open_clip config {str(path)!r} lacks {missing}: an open_clip model config needs "
            "embed_dim, vision_cfg and text_cfg"
        )
    known = open_clip.get_model_config(model_name)
    if known == config:
        return
    if known is not None:
        raise ConfigError(
            f"open_clip already knows a different model named {model_name!r}: give your config "
            "file (and the model in the spec) another name"
        )
    open_clip.add_model_config(path)


def _tag_needs_quick_gelu(model_name: str, pretrained: str | None) -> bool:
    """True when `pretrained` is a tag whose weights were trained with QuickGELU (e.g. openai)."""
    import open_clip

    if not pretrained:
        return False
    cfg = open_clip.get_pretrained_cfg(model_name, pretrained)
    return bool(cfg.get("quick_gelu", False)) if cfg else False


def _weights_identity(model_name: str, pretrained: str | None) -> str:
    """What the weights are: a file's sha256, a tag's source, or the random-init seed."""
    import open_clip

    if not pretrained:
        return f"random-init-seed-{RANDOM_INIT_SEED}"
    cfg = open_clip.get_pretrained_cfg(model_name, pretrained)
    if cfg:
        return f"tag:{pretrained}:{cfg.get('hf_hub') or cfg.get('url')}"
    return f"file-sha256:{file_sha256(Path(pretrained).expanduser())}"


def _create(model_name: str, pretrained: str | None, quick_gelu: bool, device: str, precision: str):
    """open_clip.create_model_and_transforms with llm2loss' error messages."""
    import open_clip
    import torch

    if pretrained and not open_clip.get_pretrained_cfg(model_name, pretrained):
        path = Path(pretrained).expanduser()
        if not path.is_file():
            tags = open_clip.list_pretrained_tags_by_model(model_name)
            raise WeightsError(
                f"{pretrained!r} is neither an open_clip tag of {model_name} ({tags}) nor an "
                "existing checkpoint file: give a tag or the path of a local checkpoint"
            )
        pretrained = str(path)
    try:
        with _short_hub_timeouts(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_INIT_SEED)
            model, _, preprocess = open_clip.create_model_and_transforms(
                model_name, pretrained=pretrained, device=device, precision=precision,
                force_quick_gelu=quick_gelu,
            )
    except RuntimeError as exc:
        text = str(exc)
        if "download" in text.lower():
            raise WeightsError(
                f"could not fetch open_clip weights {model_name}/{pretrained} ({text[:200]}): "
                f"download the checkpoint where you have network and use "
                f"'open_clip:{model_name}/<path to checkpoint>' instead"
            ) from None
        raise WeightsError(
            f"the checkpoint {pretrained!r} does not fit open_clip model {model_name} "
            f"({text[:300]}): use the checkpoint of that architecture"
        ) from None
    except Exception as exc:  # unpickling refused, corrupt file, ...
        raise WeightsError(
            f"could not load open_clip weights {pretrained!r} for {model_name} "
            f"({type(exc).__name__}: {str(exc)[:200]}): give a .safetensors or a state_dict .pt file"
        ) from None
    return model, preprocess
