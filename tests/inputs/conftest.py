"""Fixtures of the inputs tests: a tiny open_clip model, a small SpamAssassin slice, test models."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

HERE = Path(__file__).parent
TINY_CLIP = "llm2loss-tiny-clip"
SPAM_LIMIT = 300


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Register a tiny ViT + text transformer with open_clip (from tiny_clip.json); its name."""
    import open_clip

    folder = tmp_path_factory.mktemp("clip-config")
    shutil.copy(HERE / "tiny_clip.json", folder / f"{TINY_CLIP}.json")
    open_clip.add_model_config(folder / f"{TINY_CLIP}.json")
    return TINY_CLIP


@pytest.fixture(scope="session")
def spam_source(cache_dir: Path):
    """The first SPAM_LIMIT e-mails (hash order) of the corpus, fetched once into the cache."""
    from llm2loss.config import DatasetSpec
    from llm2loss.sources import build_source

    spec = DatasetSpec(name=f"spamassassin-{SPAM_LIMIT}", kind="spamassassin", limit=SPAM_LIMIT)
    return build_source(spec, cache_dir=Path(cache_dir))
