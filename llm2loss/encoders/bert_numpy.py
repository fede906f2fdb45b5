"""The BERT mean-pooling sentence encoder of `bert_light` in numpy: a phrase embedded without torch.

A cold `llm2loss query` embeds one or a few phrases; importing torch alone takes longer than
everything else the command does (`## CLI` in benchmarks/RESULTS.md). This is the same forward pass as
`llm2loss.encoders.bert_light.LightBert` (word + position + token-type embeddings, post-LayerNorm
encoder layers, exact erf GELU, attention to real tokens only, mean pooling over them, L2
normalisation), written with numpy matmuls in float32; `tests/inputs/test_bert_light.py` checks
its vectors against the torch forward and sentence-transformers to ~1e-5.

It covers exactly the folders `bert_light.is_light_bert` accepts (the packaged MiniLM is one).
Weights are read with `safetensors.numpy` and every tensor the forward uses is checked against
the sizes in config.json before use, so a folder whose files disagree is one clear error, never a
numpy broadcast of the wrong shapes. CPU only, one BLAS thread (`llm2loss.blas`): it is made for
a few phrases at a time; audits encode their samples in torch.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from llm2loss.blas import one_blas_thread
from llm2loss.encoders.bert_light import BertSetup, is_light_bert, longest_first, read_setup, weight_prefix
from llm2loss.errors import WeightsError


def expected_shapes(setup: BertSetup) -> dict[str, tuple[int, ...]]:
    """The tensors the forward pass reads, with the shapes config.json implies."""
    d, inner = setup.dim, setup.intermediate
    shapes: dict[str, tuple[int, ...]] = {
        "embeddings.position_embeddings.weight": (setup.positions, d),
        "embeddings.token_type_embeddings.weight": (-1, d),
        "embeddings.LayerNorm.weight": (d,), "embeddings.LayerNorm.bias": (d,),
    }
    shapes["embeddings.word_embeddings.weight"] = (setup.vocab or -1, d)
    for i in range(setup.layers):
        p = f"encoder.layer.{i}"
        for name in ("attention.self.query", "attention.self.key", "attention.self.value",
                     "attention.output.dense"):
            shapes[f"{p}.{name}.weight"], shapes[f"{p}.{name}.bias"] = (d, d), (d,)
        shapes[f"{p}.intermediate.dense.weight"], shapes[f"{p}.intermediate.dense.bias"] = (inner, d), (inner,)
        shapes[f"{p}.output.dense.weight"], shapes[f"{p}.output.dense.bias"] = (d, inner), (d,)
        for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
            shapes[f"{p}.{norm}.weight"], shapes[f"{p}.{norm}.bias"] = (d,), (d,)
    return shapes


def checked_weights(raw: dict[str, np.ndarray], setup: BertSetup, where: Path) -> dict[str, np.ndarray]:
    """The weights the forward reads, as float32 arrays of the expected shapes; WeightsError
    naming the first tensor that is missing, of another shape, or not floating point."""
    prefix = weight_prefix(raw)
    out: dict[str, np.ndarray] = {}
    for name, shape in expected_shapes(setup).items():
        value = raw.get(prefix + name)
        if value is None:
            raise WeightsError(f"{where} lacks tensor {prefix + name}; give a complete BERT model folder")
        fits = value.ndim == len(shape) and all(e in (-1, s) for e, s in zip(shape, value.shape))
        if not fits or value.dtype.kind != "f" or value.shape[0] < 1:
            raise WeightsError(f"{where}: tensor {prefix + name} is {value.dtype} {value.shape}, but "
                               f"config.json implies float {shape}; the folder's files disagree")
        out[name] = np.ascontiguousarray(value, dtype=np.float32)
    if setup.max_seq_length > setup.positions:
        raise WeightsError(f"{where}: max_seq_length {setup.max_seq_length} exceeds max_position_embeddings "
                           f"{setup.positions}; lower it in sentence_bert_config.json")
    if setup.heads < 1 or setup.dim % setup.heads:
        raise WeightsError(f"{where}: hidden_size {setup.dim} is not a multiple of num_attention_heads "
                           f"{setup.heads}; fix config.json")
    return out


def _gelu(x: np.ndarray) -> np.ndarray:
    """Exact GELU, x * Phi(x) = x / 2 * (1 + erf(x / sqrt 2)), as torch's default computes it."""
    from scipy.special import erf

    return (0.5 * x * (1.0 + erf(x * np.float32(1.0 / math.sqrt(2.0))))).astype(np.float32, copy=False)


class NumpyBert:
    """BERT forward pass, mean pooling over real tokens, L2 normalisation, in numpy float32."""

    def __init__(self, folder: Path) -> None:
        from safetensors.numpy import load_file

        setup = read_setup(folder)
        self.max_seq_length, self.dim, self.heads, self.layers, self.eps = (
            setup.max_seq_length, setup.dim, setup.heads, setup.layers, setup.eps)
        self.tokenizer = setup.tokenizer
        self.w = checked_weights(load_file(str(folder / "model.safetensors")), setup, folder)
        self.vocab = self.w["embeddings.word_embeddings.weight"].shape[0]

    def _layer_norm(self, x: np.ndarray, name: str) -> np.ndarray:
        mean = x.mean(axis=-1, keepdims=True)
        centred = x - mean
        var = (centred * centred).mean(axis=-1, keepdims=True)
        return centred / np.sqrt(var + np.float32(self.eps)) * self.w[f"{name}.weight"] + self.w[f"{name}.bias"]

    def _linear(self, x: np.ndarray, name: str) -> np.ndarray:
        weight = self.w[f"{name}.weight"]  # (out, in): a 2-D x @ weight.T is one BLAS GEMM (a 3-D one is not)
        out = x.reshape(-1, x.shape[-1]) @ weight.T + self.w[f"{name}.bias"]
        return out.reshape(*x.shape[:-1], weight.shape[0])

    def _attention(self, x: np.ndarray, mask: np.ndarray, prefix: str) -> np.ndarray:
        """softmax(q k' / sqrt(d) + mask) v over the heads; padded keys get no weight."""
        n, length, _ = x.shape
        head_dim = self.dim // self.heads

        def heads(t: np.ndarray) -> np.ndarray:
            return t.reshape(n, length, self.heads, head_dim).transpose(0, 2, 1, 3)

        q, k, v = (heads(self._linear(x, f"{prefix}.attention.self.{name}")) for name in ("query", "key", "value"))
        scores = (q @ k.transpose(0, 1, 3, 2)) * np.float32(1.0 / math.sqrt(head_dim))
        scores = np.where(mask[:, None, None, :] > 0, scores, np.float32(-np.inf))
        scores -= scores.max(axis=-1, keepdims=True)
        weights = np.exp(scores)
        weights /= weights.sum(axis=-1, keepdims=True)
        return (weights @ v).transpose(0, 2, 1, 3).reshape(n, length, self.dim)

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        length = ids.shape[1]
        x = (self.w["embeddings.word_embeddings.weight"][ids]
             + self.w["embeddings.position_embeddings.weight"][:length][None]
             + self.w["embeddings.token_type_embeddings.weight"][0][None, None])
        x = self._layer_norm(x, "embeddings.LayerNorm")
        for i in range(self.layers):
            p = f"encoder.layer.{i}"
            context = self._attention(x, mask, p)
            x = self._layer_norm(self._linear(context, f"{p}.attention.output.dense") + x,
                                 f"{p}.attention.output.LayerNorm")
            hidden = _gelu(self._linear(x, f"{p}.intermediate.dense"))
            x = self._layer_norm(self._linear(hidden, f"{p}.output.dense") + x, f"{p}.output.LayerNorm")
        weights = mask[:, :, None].astype(np.float32)
        pooled = (x * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), np.float32(1e-9))
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, np.float32(1e-12))).astype(np.float32)

    def encode(self, texts: list[str], *, batch_size: int = 64) -> np.ndarray:
        """Texts -> (n, dim) float32 unit vectors; batches of similar length (less padding)."""
        order = longest_first(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        with one_blas_thread():  # products this small run fastest on one thread (llm2loss.blas)
            self._encode_batches(texts, order, out, batch_size)
        return out

    def _encode_batches(self, texts: list[str], order: list[int], out: np.ndarray, batch_size: int) -> None:
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            encoded = self.tokenizer.encode_batch([str(texts[i]).strip() for i in chunk])
            ids = np.asarray([e.ids for e in encoded], dtype=np.int64)
            if ids.size and (ids.min() < 0 or ids.max() >= self.vocab):
                raise WeightsError(f"the tokenizer gives token ids up to {int(ids.max())} but the model has "
                                   f"{self.vocab} word embeddings; tokenizer.json and the weights disagree")
            mask = np.asarray([e.attention_mask for e in encoded], dtype=np.int64)
            out[chunk] = self._forward(ids, mask)


def load_numpy_bert(folder: str | Path) -> NumpyBert | None:
    """A NumpyBert for `folder`, or None when the folder is not a model it covers."""
    path = Path(folder)
    return NumpyBert(path) if is_light_bert(path) else None
