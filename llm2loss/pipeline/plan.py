"""The plan of an audit: what it will compute and where each part goes, fixed at its start.

`StageSharding` (the record each sharded stage keeps in the store) is defined beside the stage
protocol in `llm2loss.pipeline.shards` and re-exported here, as the plan is made of two of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel

from llm2loss.store import keys as layout
from llm2loss.config import AuditSettings, ReleaseSpec
from llm2loss.pipeline.shards import StageSharding, recorded_sharding
from llm2loss.pipeline.workers import get_encoder

if TYPE_CHECKING:
    from llm2loss.pipeline.context import AuditContext

__all__ = ["AuditPlan", "StageSharding", "encoder_spec_for", "plan_audit"]


class AuditPlan(BaseModel):
    """What an audit will do, computed once at its start. Small: it travels between tasks.

    Each stage has its own sharding: a stage begun (or sealed) with another shard size keeps it,
    so a rerun with a changed `shard_size` resumes the stage instead of mixing two splits.
    """

    model: str
    version: str
    modality: str
    dataset: str
    dataset_fingerprint: str
    encoder_spec: str
    encoder_fingerprint: str
    embeddings_sharding: StageSharding
    losses_sharding: StageSharding
    embeddings_prefix: str
    losses_prefix: str
    embeddings_ready: bool


def encoder_spec_for(release: ReleaseSpec, modality: str) -> str:
    """The encoder a release is audited with: its own, or the default for the data modality."""
    from llm2loss.encoders import default_encoder_spec

    return release.encoder or default_encoder_spec(modality)


def plan_audit(ctx: AuditContext, settings: AuditSettings) -> AuditPlan:
    """Fingerprint the dataset and encoder and say where every part of the audit goes."""
    store, release, source = ctx.store, ctx.release, ctx.source
    spec = encoder_spec_for(release, source.modality)
    encoder = get_encoder(spec)
    emb_prefix = layout.embeddings_prefix(release.dataset.name, source.fingerprint, encoder.fingerprint)
    losses_prefix = layout.losses_prefix(release.model, release.version)
    wanted = StageSharding(shard_size=settings.shard_size, n_shards=source.n_shards(settings.shard_size))
    return AuditPlan(
        model=release.model,
        version=release.version,
        modality=source.modality,
        dataset=release.dataset.name,
        dataset_fingerprint=source.fingerprint,
        encoder_spec=spec,
        encoder_fingerprint=encoder.fingerprint,
        embeddings_sharding=recorded_sharding(store, emb_prefix) or wanted,
        losses_sharding=recorded_sharding(store, losses_prefix) or wanted,
        embeddings_prefix=emb_prefix,
        losses_prefix=losses_prefix,
        embeddings_ready=store.read_stage_manifest(emb_prefix) is not None,
    )
