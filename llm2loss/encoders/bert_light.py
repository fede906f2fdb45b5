"""A BERT mean-pooling sentence encoder in plain torch: the packaged MiniLM without transformers.

Importing sentence-transformers pulls in transformers and most of torch's optional packages:
several times the cost of importing torch alone (`## CLI` in benchmarks/RESULTS.md), and a
"Loading weights" progress bar on every load. A sentence-transformers folder made of a BERT `Transformer`, mean `Pooling` and
`Normalize` (all-MiniLM-L6-v2, the default text encoder, is one) is simple enough to run here
directly: the `tokenizers` library reads its tokenizer.json, safetensors its weights, and the
forward pass below is BERT's (post-LayerNorm, exact GELU), as transformers computes it.
`tests/inputs/test_bert_light.py` checks the vectors against sentence-transformers' own.

`load_light_bert(folder)` returns None for any folder this does not cover (another
architecture, pooling or module list); the caller then uses sentence-transformers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

_MODULES = ["sentence_transformers.models.Transformer", "sentence_transformers.models.Pooling",
            "sentence_transformers.models.Normalize"]


def _read_json(path: Path) -> dict[str, Any] | list[Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def is_light_bert(folder: Path) -> bool:
    """True when `folder` is a BERT + mean pooling + normalize sentence-transformers model."""
    modules = _read_json(folder / "modules.json")
    config = _read_json(folder / "config.json")
    pooling = _read_json(folder / "1_Pooling" / "config.json")
    if not isinstance(modules, list) or not isinstance(config, dict) or not isinstance(pooling, dict):
        return False
    mean_only = pooling.get("pooling_mode_mean_tokens") is True and not any(
        pooling.get(k) for k in ("pooling_mode_cls_token", "pooling_mode_max_tokens",
                                 "pooling_mode_mean_sqrt_len_tokens", "pooling_mode_weightedmean_tokens",
                                 "pooling_mode_lasttoken"))
    return ([m.get("type") for m in modules] == _MODULES and modules[0].get("path") == ""
            and config.get("model_type") == "bert" and config.get("hidden_act") == "gelu"
            and config.get("position_embedding_type", "absolute") == "absolute"
            and mean_only and (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file())


@dataclass(frozen=True)
class BertSetup:
    """What a BERT folder's JSON files say, and its tokenizer (truncating and padding)."""

    max_seq_length: int
    dim: int
    heads: int
    layers: int
    intermediate: int
    vocab: int
    positions: int
    eps: float
    tokenizer: Any


def read_setup(folder: Path) -> BertSetup:
    """The sizes of the BERT in `folder` (one that `is_light_bert` accepts) and its tokenizer."""
    from tokenizers import Tokenizer

    config = _read_json(folder / "config.json")
    st_config = _read_json(folder / "sentence_bert_config.json") or {}
    assert isinstance(config, dict) and isinstance(st_config, dict)
    positions = int(config["max_position_embeddings"])
    max_seq_length = int(st_config.get("max_seq_length") or positions)
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=max_seq_length)
    tokenizer.enable_padding(pad_id=int(config.get("pad_token_id", 0)), pad_token="[PAD]")
    return BertSetup(max_seq_length=max_seq_length, dim=int(config["hidden_size"]),
                     heads=int(config["num_attention_heads"]), layers=int(config["num_hidden_layers"]),
                     intermediate=int(config.get("intermediate_size", 4 * int(config["hidden_size"]))),
                     vocab=int(config.get("vocab_size", 0)), positions=positions,
                     eps=float(config.get("layer_norm_eps", 1e-12)), tokenizer=tokenizer)


def weight_prefix(weights: Any) -> str:
    """"bert." when the weights were saved from a BertModel wrapper, else ""."""
    return "bert." if "bert.embeddings.word_embeddings.weight" in weights else ""


def longest_first(texts: list[str]) -> list[int]:
    """Indices of `texts`, longest first: batches of similar length need less padding."""
    return sorted(range(len(texts)), key=lambda i: -len(texts[i]))


class LightBert:
    """BERT forward pass, mean pooling over real tokens, L2 normalisation; eval mode only."""

    def __init__(self, folder: Path, *, device: str = "cpu") -> None:
        import torch
        from safetensors.torch import load_file

        setup = read_setup(folder)
        self.max_seq_length, self.dim, self.heads, self.layers, self.eps = (
            setup.max_seq_length, setup.dim, setup.heads, setup.layers, setup.eps)
        self.device = torch.device(device)
        self.dtype = torch.float32
        weights = load_file(str(folder / "model.safetensors"))
        prefix = weight_prefix(weights)
        self.w = {k[len(prefix):]: v.to(self.device) for k, v in weights.items() if k.startswith(prefix)}
        self.tokenizer = setup.tokenizer

    def half(self) -> None:
        """Run in float16 (GPU only)."""
        import torch

        self.dtype = torch.float16
        self.w = {k: (v.half() if v.is_floating_point() else v) for k, v in self.w.items()}

    def _layer_norm(self, x: Any, name: str) -> Any:
        import torch.nn.functional as F

        return F.layer_norm(x, (self.dim,), self.w[f"{name}.weight"], self.w[f"{name}.bias"], self.eps)

    def _linear(self, x: Any, name: str) -> Any:
        import torch.nn.functional as F

        return F.linear(x, self.w[f"{name}.weight"], self.w[f"{name}.bias"])

    def _forward(self, ids: Any, mask: Any) -> Any:
        import torch
        import torch.nn.functional as F

        n, length = ids.shape
        positions = torch.arange(length, device=self.device)
        x = (self.w["embeddings.word_embeddings.weight"][ids]
             + self.w["embeddings.position_embeddings.weight"][positions][None]
             + self.w["embeddings.token_type_embeddings.weight"][0][None, None])
        x = self._layer_norm(x, "embeddings.LayerNorm")
        head_dim = self.dim // self.heads
        keep = mask[:, None, None, :].bool()  # (n, 1, 1, length): attend to real tokens only
        for i in range(self.layers):
            p = f"encoder.layer.{i}"

            def heads(t: Any) -> Any:
                return t.view(n, length, self.heads, head_dim).transpose(1, 2)

            q, k, v = (heads(self._linear(x, f"{p}.attention.self.{name}")) for name in ("query", "key", "value"))
            context = F.scaled_dot_product_attention(q, k, v, attn_mask=keep)  # softmax(qk'/sqrt(d)) v
            context = context.transpose(1, 2).reshape(n, length, self.dim)
            x = self._layer_norm(self._linear(context, f"{p}.attention.output.dense") + x,
                                 f"{p}.attention.output.LayerNorm")
            hidden = F.gelu(self._linear(x, f"{p}.intermediate.dense"))
            x = self._layer_norm(self._linear(hidden, f"{p}.output.dense") + x, f"{p}.output.LayerNorm")
        weights = mask[:, :, None].to(x.dtype)
        pooled = (x * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
        return F.normalize(pooled.float(), p=2, dim=1)

    def encode(self, texts: list[str], *, batch_size: int = 64) -> np.ndarray:
        """Texts -> (n, dim) float32 unit vectors; batches of similar length (less padding)."""
        import torch

        order = longest_first(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                chunk = order[start:start + batch_size]
                encoded = self.tokenizer.encode_batch([str(texts[i]).strip() for i in chunk])
                ids = torch.tensor([e.ids for e in encoded], dtype=torch.long, device=self.device)
                mask = torch.tensor([e.attention_mask for e in encoded], dtype=torch.long, device=self.device)
                out[chunk] = self._forward(ids, mask).cpu().numpy()
        return out


def load_light_bert(folder: str | Path, *, device: str = "cpu") -> LightBert | None:
    """A LightBert for `folder`, or None when the folder is not a model it covers."""
    path = Path(folder)
    return LightBert(path, device=device) if is_light_bert(path) else None
