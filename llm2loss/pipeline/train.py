"""Training and analysis: fit the diagnosers on the train split, evaluate them on the test split.

The stage reads the sealed embeddings and losses (`llm2loss.pipeline.dataset`), runs the analysis
(`llm2loss.analysis.analyse`), keeps the held-out samples phrase findings are grounded in, and
saves every diagnoser (safetensors + JSON) next to the audit. It returns the metrics only.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from llm2loss.store import keys as layout
from llm2loss.config import AuditSettings, ReleaseSpec
from llm2loss.errors import DataError
from llm2loss.held_out import write_held_out
from llm2loss.pipeline.context import AuditContext
from llm2loss.pipeline.dataset import load_audit_data
from llm2loss.pipeline.shards import ATTRIBUTE_PREFIX
from llm2loss.pipeline.workers import get_encoder


def train_and_analyse(ctx: AuditContext, settings: AuditSettings) -> dict[str, Any]:
    """Fit every configured diagnoser on the train split, evaluate on the test split, save them.

    Also writes the held-out samples (`llm2loss.held_out`) that phrase findings are grounded in,
    with previews of each sample read from the source when the context has a `cache_dir`.
    Returns the metrics dict (JSON-able) that the report renders.
    """
    from llm2loss.analysis import analyse
    from llm2loss.vocab import vocabularies_for

    store, release, plan = ctx.store, ctx.release, ctx.planned
    data = load_audit_data(store, plan, seed=settings.seed, test_fraction=settings.test_fraction)
    losses: pd.DataFrame = data["losses"]
    test_mask: np.ndarray = data["test_mask"]
    X_train, X_test = data.pop("X_train"), data.pop("X_test")
    if test_mask.all() or (~test_mask).all():
        raise DataError(
            f"the {len(test_mask)} samples of {release.ref} give an empty train or test split; "
            "use a dataset with more samples or change audit.test_fraction"
        )
    attributes = _attribute_frame(losses)
    correct = losses["correct"].to_numpy() if "correct" in losses else None
    encoder = get_encoder(plan.encoder_spec)
    ids_test = [i for i, held in zip(data["ids"], test_mask) if held]
    previews_test = _previews(ctx, ids_test)
    result = analyse(
        X_train=X_train,
        loss_train=losses["loss"].to_numpy()[~test_mask],
        X_test=X_test,
        loss_test=losses["loss"].to_numpy()[test_mask],
        correct_test=None if correct is None else correct[test_mask],
        attributes_test=attributes[test_mask].reset_index(drop=True),
        text_encoder=encoder,
        settings=settings,
        vocabularies=vocabularies_for(plan.modality, settings.vocabularies),
        attribute_phrases=_attribute_phrases(release, attributes),
        modality=plan.modality,
        ids_test=ids_test,
        previews_test=previews_test,
    )
    held_out = write_held_out(
        store, layout.held_out_key(release.model, release.version), ids_test, X_test,
        losses["loss"].to_numpy()[test_mask],
        None if correct is None else 1.0 - correct[test_mask].astype(np.float64), previews_test)
    for name, diagnoser in result.diagnosers.items():
        objective, arch = name.split("-", 1)
        with tempfile.TemporaryDirectory() as tmp:
            diagnoser.save(Path(tmp))
            store.upload_dir(Path(tmp), layout.diagnoser_prefix(release.model, release.version, objective, arch))
    metrics = result.metrics
    metrics["split"] = {"train": int((~test_mask).sum()), "test": int(test_mask.sum())}
    metrics["held_out"] = held_out.model_dump()
    return metrics


def _previews(ctx: AuditContext, ids: list[str]) -> list[str]:
    """Previews of the held-out samples from the source ("" each without a cache_dir)."""
    if ctx.cache_dir is None:
        return [""] * len(ids)
    from llm2loss.sources.previews import previews

    return previews(ctx.source, ids)


def _attribute_frame(losses: pd.DataFrame) -> pd.DataFrame:
    columns = [c for c in losses.columns if c.startswith(ATTRIBUTE_PREFIX)]
    frame = losses[columns].copy()
    frame.columns = [c[len(ATTRIBUTE_PREFIX):] for c in columns]
    return frame


def _attribute_phrases(release: ReleaseSpec, attributes: pd.DataFrame) -> dict[str, tuple[str, str]]:
    """The phrase pair for each boolean attribute: from the dataset spec, else from the source."""
    from llm2loss.sources import default_attribute_phrases

    phrases = dict(default_attribute_phrases(release.dataset))
    phrases.update(release.dataset.attribute_phrases)
    return {k: v for k, v in phrases.items() if k in attributes.columns}
