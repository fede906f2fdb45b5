"""The stages of one audit, as plain functions over the artifact store.

An audit of a release goes: plan -> embed shards (once per dataset and encoder) -> loss shards
(once per release) -> train diagnosers and analyse -> publish the report -> write the manifest.
Each stage reads its inputs from the store and writes its outputs there, and returns only small
JSON-able dicts, so the Prefect tasks in `tasks/` are thin wrappers and nothing big travels
through a task graph. Every stage is idempotent: a part already listed (sidecar present and
matching) is skipped, so a rerun never repeats finished work.

Heavy objects (the dataset source, the encoder, the audited model) are built through per-process
caches, so a Dask worker loads each once and reuses it across shards.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import tempfile
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from pydantic import BaseModel, Field, ValidationError

from llm2loss import layout
from llm2loss.config import AuditSettings, DatasetSpec, ReleaseSpec, StoreSettings
from llm2loss.errors import DataError, StoreError
from llm2loss.held_out import write_held_out
from llm2loss.store import ArtifactStore
from llm2loss.store_checks import (check_audit_manifest, check_loss_column, contained_path,
                                   refuse_nonfinite_rows, safe_name)

log = logging.getLogger(__name__)

ATTRIBUTE_PREFIX = "attr__"


class StageSharding(BaseModel):
    """How a sharded stage splits the dataset: part i holds samples i*shard_size onwards."""

    shard_size: int = Field(ge=1)
    n_shards: int = Field(ge=0)


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


# --- per-process caches: built once per worker, never shipped through the graph -------------


@functools.lru_cache(maxsize=8)
def _store(settings_json: str) -> ArtifactStore:
    return ArtifactStore.from_settings(StoreSettings.model_validate_json(settings_json))


def get_store(settings: StoreSettings) -> ArtifactStore:
    """The store for these settings, built once per process."""
    return _store(settings.model_dump_json())


@functools.lru_cache(maxsize=8)
def _source(spec_json: str, cache_dir: str) -> Any:
    from llm2loss.sources import build_source

    return build_source(DatasetSpec.model_validate_json(spec_json), cache_dir=Path(cache_dir))


def get_source(spec: DatasetSpec, cache_dir: str) -> Any:
    """The dataset source for this spec, built once per process."""
    return _source(spec.model_dump_json(), str(Path(cache_dir).expanduser()))


@functools.lru_cache(maxsize=4)
def get_encoder(spec: str) -> Any:
    """The encoder for this spec string, loaded once per process."""
    from llm2loss.encoders import build_encoder

    return build_encoder(spec)


@functools.lru_cache(maxsize=2)  # workers outlive audits: keep few audited models alive
def _model(release_json: str, store_json: str, cache_dir: str) -> Any:
    from llm2loss.losses import load_model
    from llm2loss.registry import fetch_weights

    release = ReleaseSpec.model_validate_json(release_json)
    store = _store(store_json)
    weights = fetch_weights(store, release, Path(cache_dir))
    return load_model(release, weights_path=weights)


def get_model(release: ReleaseSpec, store: StoreSettings, cache_dir: str) -> Any:
    """The audited model of this release, loaded once per process."""
    return _model(release.model_dump_json(), store.model_dump_json(), str(Path(cache_dir).expanduser()))


def encoder_spec_for(release: ReleaseSpec, modality: str) -> str:
    """The encoder a release is audited with: its own, or the default for the data modality."""
    from llm2loss.encoders import default_encoder_spec

    return release.encoder or default_encoder_spec(modality)


# --- stages ---------------------------------------------------------------------------------


def plan_audit(
    store_settings: StoreSettings, release: ReleaseSpec, settings: AuditSettings, cache_dir: str
) -> AuditPlan:
    """Fingerprint the dataset and encoder and say where every part of the audit goes."""
    store = get_store(store_settings)
    source = get_source(release.dataset, cache_dir)
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


def recorded_sharding(store: ArtifactStore, prefix: str) -> StageSharding | None:
    """The sharding a stage was begun with, or None for a stage not begun yet."""
    key = layout.sharding_key(prefix)
    if not store.exists(key):
        return None
    try:
        return StageSharding.model_validate(store.read_json(key))
    except ValidationError:
        raise DataError(
            f"{key} is not a valid sharding record (shard_size, n_shards); delete the stage "
            f"{prefix} and rerun the audit to recompute it"
        ) from None


def _check_unrecorded_parts(store: ArtifactStore, prefix: str, sharding: StageSharding) -> None:
    """Refuse parts written before shardings were recorded when they do not fit `sharding`.

    Every part but the last must hold `shard_size` samples (its rows plus the samples it skipped),
    and no part may lie beyond `n_shards`."""
    for index, info in store.done_parts(prefix).items():
        failures = _failures_key(prefix, index)
        skipped = len(store.read_json(failures)) if store.exists(failures) else 0
        if index >= sharding.n_shards or (
            index < sharding.n_shards - 1 and info.rows + skipped != sharding.shard_size
        ):
            raise DataError(
                f"stage {prefix} holds parts written, before shardings were recorded, with "
                f"another shard size than {sharding.shard_size} (part {index}: {info.rows + skipped} "
                "samples): rerun with the shard_size it was begun with, or delete the stage to "
                "recompute it"
            )


def begin_stage(store_settings: StoreSettings, prefix: str, sharding: StageSharding) -> list[int]:
    """Record the stage's sharding (first time) and return its shards still to compute.

    The record is created atomically before any part, so every part of a stage comes from one
    split of the dataset; once written it holds for good (even if nothing was computed yet). A
    stage recorded with another sharding is refused: the plan adopts a recorded one, so this means
    two audits began the same stage with different shard sizes at once.
    """
    store = get_store(store_settings)
    recorded = recorded_sharding(store, prefix)
    if recorded is None:
        _check_unrecorded_parts(store, prefix, sharding)
        if not store.create_json_if_absent(layout.sharding_key(prefix), sharding.model_dump()):
            recorded = recorded_sharding(store, prefix)  # another run recorded it first
    if recorded is not None and recorded != sharding:
        raise DataError(
            f"stage {prefix} was begun with shards of {recorded.shard_size} ({recorded.n_shards} "
            f"shards), but this audit planned shards of {sharding.shard_size}: rerun the audit "
            "(a new plan adopts the recorded sharding)"
        )
    return pending_shards(store_settings, prefix, sharding.n_shards)


def pending_shards(store_settings: StoreSettings, prefix: str, n_shards: int) -> list[int]:
    """Shards of a stage whose part is not yet written and verified."""
    store = get_store(store_settings)
    done = store.done_parts(prefix)
    pending = []
    for index in range(n_shards):
        info = done.get(index)
        if info is None or not store.verify_part(info):
            pending.append(index)
    return pending


def _failures_key(prefix: str, index: int) -> str:
    return f"{prefix}/failures-{index:05d}.json"


def embed_shard(
    store_settings: StoreSettings, release: ReleaseSpec, plan: AuditPlan, index: int, cache_dir: str
) -> dict[str, Any]:
    """Embed one shard of the dataset and write its part. Returns the part's key and counts."""
    from llm2loss.store import embeddings_table

    store = get_store(store_settings)
    shard = get_source(release.dataset, cache_dir).read_shard(index, plan.embeddings_sharding.shard_size)
    encoder = get_encoder(plan.encoder_spec)
    start = time.perf_counter()
    # A precomputed encoder looks samples up by id; every other encoder reads the inputs.
    batch = shard.ids if plan.encoder_spec.startswith("precomputed:") else shard.inputs
    matrix = encoder.encode_inputs(batch) if shard.ids else np.zeros((0, encoder.dim), np.float32)
    seconds = time.perf_counter() - start
    store.write_json(_failures_key(plan.embeddings_prefix, index), shard.unreadable)
    info = store.write_part(plan.embeddings_prefix, index, embeddings_table(shard.ids, matrix))
    return {"key": info.key, "rows": info.rows, "failures": len(shard.unreadable), "seconds": seconds}


def loss_shard(
    store_settings: StoreSettings, release: ReleaseSpec, plan: AuditPlan, index: int, cache_dir: str
) -> dict[str, Any]:
    """Compute the audited model's per-sample loss on one shard and write its part.

    The part carries the sample's attribute columns (prefixed `attr__`) beside id, loss, label,
    prediction and correctness, so the analysis reads one table per release.
    """
    from llm2loss.losses import compute_losses

    store = get_store(store_settings)
    shard = get_source(release.dataset, cache_dir).read_shard(index, plan.losses_sharding.shard_size)
    model = get_model(release, store_settings, cache_dir)
    start = time.perf_counter()
    table = compute_losses(model, shard, task=release.task)
    seconds = time.perf_counter() - start
    table = _with_attributes(table, shard.ids, shard.attributes)
    store.write_json(_failures_key(plan.losses_prefix, index), shard.unreadable)
    info = store.write_part(plan.losses_prefix, index, table)
    return {"key": info.key, "rows": info.rows, "failures": len(shard.unreadable), "seconds": seconds}


def _with_attributes(table: pa.Table, ids: list[str], attributes: pd.DataFrame) -> pa.Table:
    """Append the shard's attribute columns, aligned on id, to a loss table."""
    if attributes is None or attributes.empty or len(attributes.columns) == 0:
        return table
    frame = attributes.copy()
    frame.index = ids
    frame = frame.reindex(table.column("id").to_pylist())
    for column in frame.columns:
        values = frame[column]
        if values.dtype == object:
            values = values.astype("string")
        table = table.append_column(f"{ATTRIBUTE_PREFIX}{column}", pa.array(values, from_pandas=True))
    return table


def seal_stage(store_settings: StoreSettings, prefix: str, n_shards: int) -> dict[str, Any]:
    """Write a stage's manifest once every part is present and verified; returns its counts."""
    store = get_store(store_settings)
    missing = pending_shards(store_settings, prefix, n_shards)
    if missing:
        raise DataError(
            f"stage {prefix} is missing parts {missing[:10]}; rerun the audit to compute them"
        )
    done = store.done_parts(prefix)
    parts = [done[i] for i in range(n_shards)]
    failures: list[Any] = []
    for index in range(n_shards):
        key = _failures_key(prefix, index)
        if store.exists(key):
            failures.extend(store.read_json(key))
    store.write_stage_manifest(prefix, parts, {"failures": failures})
    return {"prefix": prefix, "rows": sum(p.rows for p in parts), "failures": len(failures)}


def is_test_id(sample_id: str, *, seed: int, test_fraction: float) -> bool:
    """Deterministic split by a hash of the id: every release of a dataset gets the same split."""
    digest = hashlib.sha256(f"{seed}:{sample_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < test_fraction


def load_audit_data(store_settings: StoreSettings, plan: AuditPlan, *, seed: int = 0,
                    test_fraction: float = 0.3) -> dict[str, Any]:
    """Join embeddings and losses on id and split the samples into train and test.

    The embeddings are read one part at a time and copied straight into the train and test
    matrices, so the embeddings are held once (plus one part), never as a whole matrix and its
    split. Returns `ids` and `losses` (the samples that have both a loss and an embedding, in the
    losses' order), `test_mask` (one bool per sample, `is_test_id`), and `X_train`, `X_test`
    (float32, rows in that order).
    """
    from llm2loss.store import table_to_matrix

    store = get_store(store_settings)
    losses = store.read_stage_table(plan.losses_prefix).to_pandas()
    check_loss_column(losses, plan.losses_prefix)
    ids: list[str] = losses["id"].tolist()
    repeated = losses["id"][losses["id"].duplicated()]
    if len(repeated):
        raise DataError(
            f"the losses stage {plan.losses_prefix} lists {len(repeated)} ids twice (first "
            f"{repeated.iloc[0]!r}); delete the stage and rerun the audit to recompute it"
        )
    test_mask = np.array([is_test_id(i, seed=seed, test_fraction=test_fraction) for i in ids], dtype=bool)
    slot = np.empty(len(ids), dtype=np.int64)  # each sample's row in X_train or X_test
    slot[test_mask] = np.arange(int(test_mask.sum()))
    slot[~test_mask] = np.arange(int((~test_mask).sum()))
    row_of = {sample_id: row for row, sample_id in enumerate(ids)}
    found = np.zeros(len(ids), dtype=bool)
    X_train = X_test = np.zeros((0, 0), dtype=np.float32)
    for index, (part, table) in enumerate(store.iter_stage_parts(plan.embeddings_prefix)):
        part_ids, matrix = table_to_matrix(table)
        refuse_nonfinite_rows(store, plan.embeddings_prefix, part, part_ids, matrix)
        if index == 0:
            X_train = np.empty((int((~test_mask).sum()), matrix.shape[1]), dtype=np.float32)
            X_test = np.empty((int(test_mask.sum()), matrix.shape[1]), dtype=np.float32)
        rows = np.fromiter((row_of.get(i, -1) for i in part_ids), dtype=np.int64, count=len(part_ids))
        known = rows >= 0  # an embedded sample whose loss failed has no row
        if not known.all():
            rows, matrix = rows[known], matrix[known]
        in_test = test_mask[rows]
        X_test[slot[rows[in_test]]] = matrix[in_test]
        X_train[slot[rows[~in_test]]] = matrix[~in_test]
        found[rows] = True
    if not found.all():  # samples with a loss but no embedding (their embedding failed): dropped,
        # at the price of one more copy of the kept rows in this (rare) case
        X_train, X_test = X_train[found[~test_mask]], X_test[found[test_mask]]
        losses = losses[found].reset_index(drop=True)
        ids, test_mask = losses["id"].tolist(), test_mask[found]
    return {"ids": ids, "losses": losses, "test_mask": test_mask, "X_train": X_train, "X_test": X_test}


def train_and_analyse(
    store_settings: StoreSettings,
    release: ReleaseSpec,
    plan: AuditPlan,
    settings: AuditSettings,
    cache_dir: str | None = None,
) -> dict[str, Any]:
    """Fit every configured diagnoser on the train split, evaluate on the test split, save them.

    Also writes the held-out samples (`llm2loss.held_out`) that phrase findings are grounded in,
    with previews of each sample read from the source when `cache_dir` is given.
    Returns the metrics dict (JSON-able) that the report renders.
    """
    from llm2loss.analysis import analyse
    from llm2loss.vocab import vocabularies_for

    store = get_store(store_settings)
    data = load_audit_data(store_settings, plan, seed=settings.seed, test_fraction=settings.test_fraction)
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
    previews_test = _previews(release, cache_dir, ids_test)
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


def _previews(release: ReleaseSpec, cache_dir: str | None, ids: list[str]) -> list[str]:
    """Previews of the held-out samples from the source ("" each without a cache_dir)."""
    if cache_dir is None:
        return [""] * len(ids)
    from llm2loss.sources.previews import previews

    return previews(get_source(release.dataset, cache_dir), ids)


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


def now_iso() -> str:
    """The current UTC time, ISO formatted (manifests and summaries)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def dumps(obj: Any) -> str:
    """Stable JSON for small dicts (used in cache keys and manifests)."""
    return json.dumps(obj, sort_keys=True, default=str)


# --- after the analysis: regression against the previous version, report, manifest -----------


def audit_manifest(store_settings: StoreSettings, model: str, version: str) -> dict[str, Any] | None:
    """The manifest of a completed audit, or None while there is none (`audits.finished_manifest`)."""
    from llm2loss import audits

    return audits.finished_manifest(get_store(store_settings), model, version)


def previous_audit(store_settings: StoreSettings, release: ReleaseSpec, plan: AuditPlan) -> dict[str, Any] | None:
    """The latest earlier release of the same model audited on the same dataset and encoder."""
    from llm2loss.registry import list_releases

    store = get_store(store_settings)
    best: tuple[Any, dict[str, Any]] | None = None
    for other in list_releases(store):
        if other.model != release.model or other.version == release.version:
            continue
        if other.created_at >= release.created_at:
            continue
        try:
            manifest = audit_manifest(store_settings, other.model, other.version)
        except StoreError as exc:  # another release's tampered manifest must not fail this audit
            log.warning("skipping %s as the previous audit: %s", other.ref, exc)
            continue
        if manifest is None:
            continue
        if (manifest.get("dataset_fingerprint"), manifest.get("encoder_fingerprint")) != (
            plan.dataset_fingerprint,
            plan.encoder_fingerprint,
        ):
            continue
        if best is None or other.created_at > best[0]:
            best = (other.created_at, manifest)
    return None if best is None else best[1]


def load_diagnosers(store_settings: StoreSettings, model: str, version: str, dest: Path) -> dict[str, Any]:
    """Download and load every diagnoser of a completed audit (safetensors + JSON, no code run)."""
    from llm2loss.diagnoser import LossDiagnoser

    store = get_store(store_settings)
    root = layout.audit_prefix(model, version) + "/diagnosers"
    names = sorted({key[len(root) + 1 :].split("/", 1)[0] for key in store.list(f"{root}/")})
    known = {f"{o}-{a}" for o in layout.OBJECTIVES for a in layout.ARCHS}
    for name in sorted(set(names) - known):  # never a path: only the known names become one
        log.warning("skipping %r under %s: not a diagnoser this version writes", name, root)
    diagnosers = {}
    for name in sorted(set(names) & known):
        local = dest / name
        store.download_dir(f"{root}/{name}", local)
        diagnosers[name] = LossDiagnoser.load(local)
    return diagnosers


def regression_against_previous(
    store_settings: StoreSettings, release: ReleaseSpec, plan: AuditPlan, metrics: dict[str, Any]
) -> dict[str, Any] | None:
    """The version-to-version regression report, when an earlier version was audited alike."""
    from llm2loss.analysis import compare_versions, regression_phrases

    previous = previous_audit(store_settings, release, plan)
    if previous is None:
        return None
    store = get_store(store_settings)
    prev_metrics = store.read_json(layout.report_prefix(previous["model"], previous["version"]) + "/metrics.json")
    encoder = get_encoder(plan.encoder_spec)
    phrases = regression_phrases(prev_metrics, metrics)
    with tempfile.TemporaryDirectory() as tmp:
        prev = load_diagnosers(store_settings, previous["model"], previous["version"], Path(tmp) / "prev")
        cur = load_diagnosers(store_settings, release.model, release.version, Path(tmp) / "cur")
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


def publish_report(
    store_settings: StoreSettings,
    release: ReleaseSpec,
    plan: AuditPlan,
    metrics: dict[str, Any],
    regression: dict[str, Any] | None,
) -> dict[str, Any]:
    """Render the report and upload it next to the audit; returns the report's keys and URI."""
    from llm2loss.report import render_report

    store = get_store(store_settings)
    prefix = layout.report_prefix(release.model, release.version)
    with tempfile.TemporaryDirectory() as tmp:
        files = render_report(metrics, Path(tmp), regression=regression)
        for path in files:
            store.upload(path, f"{prefix}/{path.name}")
        if regression is not None:
            store.write_json(f"{prefix}/regression.json", regression)
    return {"prefix": prefix, "index": f"{prefix}/index.html", "uri": uri_for(store, f"{prefix}/index.html")}


def uri_for(store: ArtifactStore, key: str) -> str:
    """A URI a person can open: file:// for a folder store, s3://bucket/prefix/key otherwise."""
    if store.is_local:
        return (Path(store.uri).resolve() / key).as_uri()
    return f"{store.uri.rstrip('/')}/{key}"


def audit_summary(
    store_settings: StoreSettings,
    release: ReleaseSpec,
    plan: AuditPlan,
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
    failures = get_store(store_settings).read_stage_manifest(plan.losses_prefix).get("failures", [])
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
        "samples_skipped": len(failures),
        "skipped_reasons": dict(Counter(reason for _id, reason in failures)),
        "split": split,
        "stage_seconds": {k: round(v, 3) for k, v in stage_seconds.items()},
        "shard_compute_seconds": {k: round(v, 3) for k, v in (shard_compute_seconds or {}).items()},
        "created_at": now_iso(),
    }


def write_audit_manifest(
    store_settings: StoreSettings,
    release: ReleaseSpec,
    plan: AuditPlan,
    *,
    report: dict[str, Any],
    summary: dict[str, Any],
    regression_flag: bool,
) -> dict[str, Any]:
    """Write the audit's manifest, last of all its artifacts: from now on the audit exists.
    Identity fields come from `summary` (see `audit_summary`); the manifest adds where each
    artifact lives."""
    store = get_store(store_settings)
    manifest = {
        "status": "completed",
        **{k: summary[k] for k in ("model", "version", "dataset", "dataset_fingerprint",
                                   "encoder", "encoder_fingerprint")},
        "embeddings": plan.embeddings_prefix,
        "losses": plan.losses_prefix,
        "report": report["index"],
        "metrics": f"{report['prefix']}/metrics.json",
        "significant_regression": regression_flag,
        "summary": summary,
        "completed_at": now_iso(),
    }
    store.write_json(layout.audit_manifest_key(release.model, release.version), manifest)
    return manifest


def local_report_path(cfg: Any, manifest: dict[str, Any]) -> Path:
    """A local path of an audit's index.html (`audits.local_report_path`)."""
    from llm2loss import audits

    return audits.local_report_path(get_store(cfg.store), manifest, cfg.cache_dir)
