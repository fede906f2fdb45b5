"""The `llm2loss` commands about releases and their audits: audit, register, releases, audits.

Defined here and registered on the `llm2loss` Typer app by `app.cli`, which keeps the question
commands. `audit` and `register` reach up into the orchestration layer (`flows`), lazily, inside
the command, so the library itself stays free of Prefect.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.text import Text

from app import cli_format
from app.cli_common import JsonOpt, StoreOpt, VerboseOpt, open_store, parse_ref, print_json, settings, make_table, show
from app.cli_errors import friendly_errors, one_line
from llm2loss.config import ReleaseSpec, Settings
from llm2loss.errors import ConfigError, StoreError


@friendly_errors
def audit(
    ref: str = typer.Argument(..., help="MODEL@VERSION of a registered release."),
    store: Optional[str] = StoreOpt,
    as_json: bool = JsonOpt,
    verbose: bool = VerboseOpt,
) -> None:
    """Audit a registered release through the Prefect flow: one line per stage, a bar per sharded stage.

    Runs on a Dask LocalCluster, or on the cluster at $LLM2LOSS_DASK__ADDRESS. A finished audit
    is not repeated (its manifest is read; nothing starts). Prints the headline findings and
    where the report is. Prefect and Dask log lines go to the Prefect UI and a log file.

    Example: llm2loss audit spam-filter@v2 --store s3://audits/team-a
    """
    from llm2loss import audits as finished
    from llm2loss import registry

    model, version = parse_ref(ref)
    cfg = settings(store)
    store_ = finished.open_store(cfg.store)
    release = registry.get(store_, model, version)  # unknown release: fail before any flow
    manifest = finished.finished_manifest(store_, model, version)
    if manifest is not None and as_json:
        print_json(manifest)
        return
    out = cli_format.console()
    if manifest is not None:
        out.print(Text(f"audit of {release.ref} already completed at {manifest['completed_at']}; nothing to run"),
                  soft_wrap=True)
    else:
        manifest = _run_audit_flow(cfg, model, version, as_json=as_json, verbose=verbose)
        if as_json:
            print_json(manifest)
            return
        out.print(Text(f"audit of {release.ref} completed"), soft_wrap=True)
    print_audit_findings(out, store_, manifest)
    out.print(Text(f"report: {manifest['report']} (local path: llm2loss report {release.ref})"), soft_wrap=True)


def _run_audit_flow(cfg: Settings, model: str, version: str, *, as_json: bool, verbose: bool) -> dict[str, Any]:
    """Run the audit flow here: stage lines and bars on stderr, Prefect/Dask logs in a log file."""
    from llm2loss.console import StageConsole, use
    from app.demo import local_prefect_defaults
    from flows.logs import console_logging, log_file_for

    local_prefect_defaults()
    log_file = log_file_for(cfg.cache_dir, f"audit-{model}-{version}")
    stages_out = None if as_json else StageConsole(Console(stderr=True, soft_wrap=True), bars=not verbose)
    with console_logging(log_file, verbose=verbose):
        from flows.audit import run_audit_flow

        if stages_out is not None:
            stages_out.line(f"auditing {model}@{version} through the Prefect flow (log: {log_file})")
        with use(stages_out):
            return run_audit_flow(model, version, cfg, progress=stages_out is not None)


def print_audit_findings(out: Console, store: Any, manifest: dict[str, Any]) -> None:
    """The audit's headline findings, then its regression findings, numbered and unwrapped."""
    from llm2loss import audits as finished
    from llm2loss.console import print_findings
    from llm2loss.report import headline_findings, regression_findings

    ref = f"{manifest['model']}@{manifest['version']}"
    print_findings(out, f"Headline findings of {ref}", headline_findings(finished.metrics_of(store, manifest)))
    regression = finished.regression_of(store, manifest)
    if regression is not None:
        previous = (regression.get("previous") or {}).get("version")
        print_findings(out, f"Regression of {ref} against {previous}", regression_findings(regression))


@friendly_errors
def register(
    release_file: Path = typer.Argument(..., help="release.json to register."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="Weights file (.safetensors or .pt) stored with the release."),
    store: Optional[str] = StoreOpt,
    no_event: bool = typer.Option(False, "--no-event", help="Do not emit llm2loss.release.registered."),
) -> None:
    """Register a release and emit `llm2loss.release.registered` (which triggers its audit).

    Versions are immutable: the same content again is a no-op, different content is refused.
    When the Prefect API cannot be reached the release is still registered, and a note says so.

    Example: llm2loss register examples/releases/spam-filter/v2/release.json --weights v2.safetensors
    """
    from llm2loss import registry
    from llm2loss.registry import validation_problems

    if not release_file.is_file():
        raise ConfigError(f"release file {release_file} does not exist; give the path of a release.json")
    try:
        release = ReleaseSpec.model_validate_json(release_file.read_text(encoding="utf-8"))
    except ValidationError as exc:
        raise ConfigError(f"{release_file} is not a valid release.json: {validation_problems(exc)}; "
                          "fix these fields") from None
    key = registry.register(open_store(settings(store)), release, weights_file=weights)
    typer.echo(f"registered {release.ref} at {key}")
    if no_event:
        return
    from flows.events import emit_release_registered  # the one emitter: the flow's events module

    problem = emit_release_registered(release.model, release.version)
    if problem is None:
        typer.echo(f"emitted llm2loss.release.registered for {release.ref}")
    else:
        typer.echo(f"note: {one_line(problem)}", err=True)


def trusted_manifest(store: Any, model: str, version: str) -> dict[str, Any] | None:
    """The finished audit's manifest for a listing, or None: one that cannot be trusted (changed
    in the store by someone else) is skipped with one `warning:` line on stderr, so it never hides
    the other releases. (Commands about that one audit still fail on it, with the reason.)"""
    from llm2loss import audits as finished

    try:
        return finished.finished_manifest(store, model, version)
    except (StoreError, ConfigError) as exc:
        typer.echo(f"warning: skipping the audit of {model}@{version}: {one_line(exc)}", err=True)
        return None


@friendly_errors
def releases(store: Optional[str] = StoreOpt, as_json: bool = JsonOpt) -> None:
    """List registered releases and whether each has a completed audit.

    Example: llm2loss releases --json
    """
    from llm2loss import registry

    cfg = settings(store)
    store_ = open_store(cfg)
    rows = [
        {
            "model": r.model,
            "version": r.version,
            "dataset": r.dataset.name,
            "task": r.task,
            "created_at": r.created_at.isoformat(timespec="seconds"),
            "audited": trusted_manifest(store_, r.model, r.version) is not None,
        }
        for r in registry.list_releases(store_)
    ]
    show(rows, as_json, make_table("Releases", rows, ["model", "version", "dataset", "task", "created_at", "audited"]),
         empty=f"no releases registered in {open_store(cfg).describe()}; register one with `llm2loss register`")


@friendly_errors
def audits(store: Optional[str] = StoreOpt, as_json: bool = JsonOpt) -> None:
    """List completed audits, whether each found a significant regression, and their reports.

    Example: llm2loss audits
    """
    from llm2loss import registry

    cfg = settings(store)
    store_ = open_store(cfg)
    rows = []
    for r in registry.list_releases(store_):
        manifest = trusted_manifest(store_, r.model, r.version)
        if manifest is not None:
            rows.append({
                "model": r.model, "version": r.version, "completed_at": manifest["completed_at"],
                "significant_regression": bool(manifest.get("significant_regression", False)),
                "report": manifest["report"],
            })
    show(rows, as_json,
         make_table("Audits", rows, ["model", "version", "completed_at", "significant_regression", "report"]),
         empty=f"no completed audits in {open_store(cfg).describe()}; run one with `llm2loss audit MODEL@VERSION`")

