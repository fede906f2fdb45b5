"""After the analysis: the regression against the previous version, the report, the manifest.

The audit manifest is written last of all the audit's artifacts: from that moment on the audit
exists (`llm2loss.audits` reads it). Everything before it can be redone without harm.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from llm2loss import audits
from llm2loss.store import keys as layout
from llm2loss.pipeline.context import AuditContext
from llm2loss.pipeline.shards import stage_unreadable
from llm2loss.pipeline.workers import get_encoder
from llm2loss.store import ArtifactStore


def now_iso() -> str:
    """The current UTC time, ISO formatted (manifests and summaries)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def regression_against_previous(ctx: AuditContext, metrics: dict[str, Any]) -> dict[str, Any] | None:
    """The version-to-version regression report, when an earlier version was audited alike."""
    from llm2loss.regression import compare_versions, regression_phrases

    store, release, plan = ctx.store, ctx.release, ctx.planned
    previous = audits.previous_audit(store, release, dataset_fingerprint=plan.dataset_fingerprint,
                                     encoder_fingerprint=plan.encoder_fingerprint)
    if previous is None:
        return None
    prev_metrics = store.read_json(layout.metrics_key(previous["model"], previous["version"]))
    encoder = get_encoder(plan.encoder_spec)
    phrases = regression_phrases(prev_metrics, metrics)
    with tempfile.TemporaryDirectory() as tmp:
        prev = audits.load_diagnosers(store, previous["model"], previous["version"], Path(tmp) / "prev")
        cur = audits.load_diagnosers(store, release.model, release.version, Path(tmp) / "cur")
        report = compare_versions(
            prev_diagnosers=prev,
            prev_metrics=prev_metrics,
            cur_diagnosers=cur,
            cur_metrics=metrics,
            phrase_embeddings=encoder.encode_text(phrases) if phrases else None,
            phrases=phrases,
        )
    report["previous"] = {"model": previous["model"], "version": previous["version"]}
    return report


def publish_report(ctx: AuditContext, metrics: dict[str, Any],
                   regression: dict[str, Any] | None) -> dict[str, Any]:
    """Render the report and upload it next to the audit; returns the report's keys and URI."""
    from llm2loss.report import render_report

    store, release = ctx.store, ctx.release
    prefix = layout.report_prefix(release.model, release.version)
    with tempfile.TemporaryDirectory() as tmp:
        files = render_report(metrics, Path(tmp), regression=regression)
        for path in files:
            store.upload(path, layout.report_file_key(release.model, release.version, path.name))
        if regression is not None:
            store.write_json(layout.regression_key(release.model, release.version), regression)
    index = layout.report_index_key(release.model, release.version)
    return {"prefix": prefix, "index": index, "uri": uri_for(store, index)}


def uri_for(store: ArtifactStore, key: str) -> str:
    """A URI a person can open: file:// for a folder store, s3://bucket/prefix/key otherwise."""
    if store.is_local:
        return (Path(store.uri).resolve() / key).as_uri()
    return f"{store.uri.rstrip('/')}/{key}"


def audit_summary(
    ctx: AuditContext,
    *,
    sealed_rows: int,
    split: dict[str, Any],
    stage_seconds: dict[str, float],
    shard_compute_seconds: dict[str, float] | None = None,
) -> dict[str, Any]:
    """What an audit covered, for its metrics and manifest: identity, samples used and skipped
    (with the reasons the loss stage recorded), the split, how long each stage took (wall) and,
    for the sharded stages, the seconds the shard tasks spent computing (encoder or model calls,
    summed over shards): wall minus compute / workers is what orchestration and I/O cost."""
    release, plan = ctx.release, ctx.planned
    unreadable = stage_unreadable(ctx.store, plan.losses_prefix)
    return {
        "model": release.model,
        "version": release.version,
        "dataset": plan.dataset,
        "dataset_fingerprint": plan.dataset_fingerprint,
        "encoder": plan.encoder_spec,
        "encoder_fingerprint": plan.encoder_fingerprint,
        "task": release.task,
        "modality": plan.modality,
        "samples_used": sealed_rows,
        "samples_skipped": len(unreadable),
        "skipped_reasons": dict(Counter(reason for _id, reason in unreadable)),
        "split": split,
        "stage_seconds": {k: round(v, 3) for k, v in stage_seconds.items()},
        "shard_compute_seconds": {k: round(v, 3) for k, v in (shard_compute_seconds or {}).items()},
        "created_at": now_iso(),
    }


def write_audit_manifest(
    ctx: AuditContext,
    *,
    report: dict[str, Any],
    summary: dict[str, Any],
    regression_flag: bool,
) -> dict[str, Any]:
    """Write the audit's manifest, last of all its artifacts: from now on the audit exists.
    Identity fields come from `summary` (see `audit_summary`); the manifest adds where each
    artifact lives."""
    release, plan = ctx.release, ctx.planned
    manifest = {
        "status": "completed",
        **{k: summary[k] for k in ("model", "version", "dataset", "dataset_fingerprint",
                                   "encoder", "encoder_fingerprint")},
        "embeddings": plan.embeddings_prefix,
        "losses": plan.losses_prefix,
        "report": report["index"],
        "metrics": layout.metrics_key(release.model, release.version),
        "significant_regression": regression_flag,
        "summary": summary,
        "completed_at": now_iso(),
    }
    ctx.store.write_json(layout.audit_manifest_key(release.model, release.version), manifest)
    return manifest
