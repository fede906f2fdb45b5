"""Helpers shared by the fault and security tests: small audits, task-run counts, error checks.

An audit here is the real thing (Prefect server, Dask, a real store) on a small slice of the
SpamAssassin corpus with few, small diagnosers, so each run takes seconds, not minutes.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from llm2loss import pipeline as stages
from llm2loss.config import (
    AuditSettings,
    DaskSettings,
    DatasetSpec,
    DiagnoserSettings,
    Settings,
    StoreSettings,
)

LIMIT = 160
SHARD_SIZE = 40
N_SHARDS = -(-LIMIT // SHARD_SIZE)
REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
SPAM_SPEC = DatasetSpec(name=f"spamassassin-{LIMIT}", kind="spamassassin", limit=LIMIT)


def small_settings(store: StoreSettings, dask_address: str, cache_dir: Path, **audit: Any) -> Settings:
    """Four shards, one small diagnoser: the whole pipeline in seconds."""
    options: dict[str, Any] = dict(
        shard_size=SHARD_SIZE,
        diagnosers=DiagnoserSettings(objectives=["rank"], archs=["linear"], n_members=2),
    )
    options.update(audit)
    return Settings(
        store=store,
        dask=DaskSettings(address=dask_address),
        audit=AuditSettings(**options),
        cache_dir=str(cache_dir),
    )


def local_audit_setup(tmp_path: Path, dask_address: str, cache_dir: Path, releases: list, **audit: Any):
    """Small settings over a fresh local store in `tmp_path` with `releases` registered: (cfg, store)."""
    from llm2loss import registry

    cfg = small_settings(StoreSettings(uri=str(tmp_path / "store")), dask_address, cache_dir, **audit)
    store = stages.get_store(cfg.store)
    for release, weights in releases:
        registry.register(store, release, weights_file=weights)
    return cfg, store


def train_weights(cache_dir: Path, out_dir: Path) -> list:
    """The two example spam-filter releases (v1 naive Bayes, v2 logistic) on the slice."""
    from llm2loss.example_models.spam import train_spam_releases

    source = stages.get_source(SPAM_SPEC, str(cache_dir))
    return train_spam_releases(source, out_dir, dataset=SPAM_SPEC)


def run_flow(cfg: Settings, model: str, version: str, *, expect_ok: bool = True):
    """Run audit_release in this process; (flow run id, state)."""
    from flows.audit import audit_release
    from flows.runtime import make_task_runner

    flow = audit_release.with_options(task_runner=make_task_runner(cfg.dask))
    state = flow(model=model, version=version, settings=cfg.model_dump(mode="json"), return_state=True)
    if expect_ok:
        assert state.is_completed(), state.message
    return state.state_details.flow_run_id, state


def flow_task_runs(flow_run_id) -> list:
    """The task runs of one flow run, read back from the Prefect server."""
    with get_client(sync_client=True) as client:
        return client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))


def count_shard_runs(flow_run_id, kind: str) -> int:
    """How many `embed-<i>` or `loss-<i>` task runs a flow run made."""
    return sum(r.name.startswith(f"{kind}-") for r in flow_task_runs(flow_run_id))


def stage_ids(store, prefix: str) -> list[str]:
    """Every id a sealed stage lists, in order (duplicates kept, to be counted)."""
    return store.read_stage_table(prefix, columns=["id"]).column("id").to_pylist()


def done_indices(store, prefix: str) -> set[int]:
    """Shards of a stage whose part is written and verified."""
    return set(store.done_parts(prefix, verify=True))


def plan_of(cfg: Settings, release):
    """The audit plan of a release under these settings (where its stages live)."""
    return stages.plan_audit(stages.AuditContext.of(cfg, release), cfg.audit)


def assert_one_clear_sentence(message: str, *mentions: str) -> None:
    """An error message: one line, no traceback, short, naming the problem and saying what to do."""
    assert message and "\n" not in message.strip(), message
    assert "Traceback" not in message and len(message) < 600, message
    for word in mentions:
        assert word.lower() in message.lower(), f"{word!r} not in {message!r}"
    fixes = ("use ", "give ", "register", "check", "fix", "set ", "install", "rerun", "run ", "save ",
             "shorten", "add ", "keep ", "create", "choose", "rename", "name ", "delete", "re-export")
    assert any(f in message.lower() for f in fixes), f"no fix named in {message!r}"


def subprocess_env(cfg: Settings, prefect_api_url: str) -> dict[str, str]:
    """The environment of an audit run in a child process: the harness's API, these settings."""
    env = dict(os.environ)
    env.update({
        "PREFECT_API_URL": prefect_api_url,
        "LLM2LOSS_STORE__URI": cfg.store.uri,
        "LLM2LOSS_DASK__ADDRESS": cfg.dask.address or "",
        "LLM2LOSS_AUDIT": cfg.audit.model_dump_json(),
        "LLM2LOSS_CACHE_DIR": cfg.cache_dir,
        "PYTHONPATH": os.pathsep.join([str(REPO), str(HERE)]),
    })
    if cfg.store.endpoint_url:
        env["LLM2LOSS_STORE__ENDPOINT_URL"] = cfg.store.endpoint_url
    return env


AUDIT_IN_CHILD = (
    "import sys; from flows.audit import run_audit_flow; from llm2loss.config import Settings; "
    "run_audit_flow(sys.argv[1], sys.argv[2], Settings())"
)


def child_command(model: str, version: str) -> list[str]:
    """argv of a child process that runs one audit with the environment's settings."""
    return [sys.executable, "-c", AUDIT_IN_CHILD, model, version]
