"""The `llm2loss` command: audit releases, ask audits questions, read their reports.

Output is a rich table by default and JSON with `--json`. Every expected failure (unknown model
or version, unfinished audit, empty phrase, wrong store credentials, ...) is one clear line on
stderr and a non-zero exit, never a traceback.

The CLI is the one front door that reaches up into the orchestration layer: `audit`, `register`
and `demo` import `flows` lazily, inside the command, so the library itself stays free of Prefect.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from rich.text import Text


from app import cli_format
from app.cli_errors import OneLineUsageErrors, friendly_errors, one_line, validation_problems
from llm2loss.config import ReleaseSpec, Settings
from llm2loss.errors import ConfigError
from llm2loss.gate import DEFAULT_MAX_ERROR_RATE_RISE
from llm2loss.names import validate_name

HELP = """Explain, in words, where a trained model fails and whom it treats worse.

Register a release, audit it, then ask the audit questions in plain words:

  llm2loss register release.json --weights v2.safetensors

  llm2loss audit spam-filter@v2

  llm2loss query spam-filter@v2 "an email written in HTML"

  llm2loss compare spam-filter@v2 "an email written in HTML" "a plain-text email"

  llm2loss discover spam-filter@v2

  llm2loss report spam-filter@v2

  llm2loss gate spam-filter@v2

  llm2loss serve   (a warm query service and web page; then query ... --server http://127.0.0.1:8765)

The store is a folder (default ./llm2loss-store) or s3://bucket/prefix, set with --store or
LLM2LOSS_STORE__URI. S3 credentials come from the environment (AWS_*) only.
"""


JsonOpt = typer.Option(False, "--json", help="Print JSON instead of a table.")
StoreOpt = typer.Option(
    None, "--store",
    help="Store URI (folder or s3://bucket/prefix); default $LLM2LOSS_STORE__URI or ./llm2loss-store.",
)
VerboseOpt = typer.Option(False, "--verbose", "-v",
                          help="Also show Prefect's and Dask's log lines on the console.")
ServerOpt = typer.Option(
    None, "--server", envvar="LLM2LOSS_SERVER",
    help="Ask a running `llm2loss serve` at this URL (e.g. http://127.0.0.1:8765) instead of loading the audit here; default $LLM2LOSS_SERVER.",
)
DEBUG_ENV = "LLM2LOSS_DEBUG"


def _out() -> Console:
    # Built per call so that the stream in use (a test runner's, a pipe) is the one written to.
    return cli_format.console()


app = typer.Typer(
    name="llm2loss",
    cls=OneLineUsageErrors,
    help=HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def settings(store: Optional[str]) -> Settings:
    """Settings from the environment (LLM2LOSS_*), with the --store option on top."""
    cfg = Settings()
    if store is not None:
        if not store.strip():
            raise ConfigError("--store is empty: give a folder or s3://bucket/prefix")
        cfg.store.uri = store
    return cfg


def parse_ref(ref: str) -> tuple[str, str]:
    """`MODEL@VERSION` -> (model, version), both validated."""
    model, sep, version = ref.partition("@")
    if not sep or not model or not version or "@" in version:
        raise ConfigError(f"{ref!r} is not MODEL@VERSION: write it like spam-filter@v2")
    return validate_name(model, "model name"), validate_name(version, "version")


def jsonable(value: Any) -> Any:
    """Plain JSON types: numpy scalars unwrapped, NaN/inf as null, dicts and lists recursed."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def print_json(data: Any) -> None:
    """Write `data` as strict JSON (no NaN) to stdout."""
    sys.stdout.write(json.dumps(jsonable(data), indent=2, allow_nan=False) + "\n")


make_table = cli_format.make_table


def show(data: Any, as_json: bool, table: Table | None = None, empty: str | None = None) -> None:
    """JSON with --json; else the table, or the `empty` note when there are no rows."""
    if as_json:
        print_json(data)
    elif not data and empty:
        typer.echo(empty)
    elif table is not None:
        _out().print(table)


def _store(cfg: Settings) -> Any:
    from llm2loss import audits as finished

    return finished.open_store(cfg.store)


# --- commands --------------------------------------------------------------------------------


@app.command()
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
    out = _out()
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


@app.command()
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

    if not release_file.is_file():
        raise ConfigError(f"release file {release_file} does not exist; give the path of a release.json")
    try:
        release = ReleaseSpec.model_validate_json(release_file.read_text(encoding="utf-8"))
    except ValidationError as exc:
        raise ConfigError(f"{release_file} is not a valid release.json: {validation_problems(exc)}; "
                          "fix these fields") from None
    key = registry.register(_store(settings(store)), release, weights_file=weights)
    typer.echo(f"registered {release.ref} at {key}")
    if no_event:
        return
    from flows.events import emit_release_registered  # the one emitter: the flow's events module

    problem = emit_release_registered(release.model, release.version)
    if problem is None:
        typer.echo(f"emitted llm2loss.release.registered for {release.ref}")
    else:
        typer.echo(f"note: {one_line(problem)}", err=True)


@app.command()
@friendly_errors
def releases(store: Optional[str] = StoreOpt, as_json: bool = JsonOpt) -> None:
    """List registered releases and whether each has a completed audit.

    Example: llm2loss releases --json
    """
    from llm2loss import audits as finished
    from llm2loss import registry

    cfg = settings(store)
    store_ = _store(cfg)
    rows = [
        {
            "model": r.model,
            "version": r.version,
            "dataset": r.dataset.name,
            "task": r.task,
            "created_at": r.created_at.isoformat(timespec="seconds"),
            "audited": finished.finished_manifest(store_, r.model, r.version) is not None,
        }
        for r in registry.list_releases(store_)
    ]
    show(rows, as_json, make_table("Releases", rows, ["model", "version", "dataset", "task", "created_at", "audited"]),
         empty=f"no releases registered in {_store(cfg).describe()}; register one with `llm2loss register`")


@app.command()
@friendly_errors
def audits(store: Optional[str] = StoreOpt, as_json: bool = JsonOpt) -> None:
    """List completed audits, whether each found a significant regression, and their reports.

    Example: llm2loss audits
    """
    from llm2loss import audits as finished
    from llm2loss import registry

    cfg = settings(store)
    store_ = _store(cfg)
    rows = []
    for r in registry.list_releases(store_):
        manifest = finished.finished_manifest(store_, r.model, r.version)
        if manifest is not None:
            rows.append({
                "model": r.model, "version": r.version, "completed_at": manifest["completed_at"],
                "significant_regression": bool(manifest.get("significant_regression", False)),
                "report": manifest["report"],
            })
    show(rows, as_json,
         make_table("Audits", rows, ["model", "version", "completed_at", "significant_regression", "report"]),
         empty=f"no completed audits in {_store(cfg).describe()}; run one with `llm2loss audit MODEL@VERSION`")


def open_audit(store: Optional[str], model: str, version: str, server: Optional[str] = None) -> Any:
    """The finished audit that answers query / compare / discover: an `AuditQuery` here, or the
    same questions sent to a running `llm2loss serve` when `server` is given."""
    if server:
        from app.client import remote_audit

        return remote_audit(server, model, version, store=store)
    from llm2loss.query import AuditQuery

    return AuditQuery(settings(store).store, model, version)


@app.command()
@friendly_errors
def query(
    ref: str = typer.Argument(..., help="MODEL@VERSION of an audited release."),
    phrases: list[str] = typer.Argument(..., help="Phrases to estimate (each at most 300 characters)."),
    store: Optional[str] = StoreOpt,
    as_json: bool = JsonOpt,
    server: Optional[str] = ServerOpt,
) -> None:
    """Estimated loss of each phrase, in the report's units, with the ensemble's uncertainty.

    percentile: where the phrase's estimated loss falls among the held-out samples (0-100; higher:
    the model fails more on such samples), ± its spread over the ensemble members; P(above
    median): the share of members that place it above the median sample; measured loss: the
    real loss of the held-out samples the phrase retrieves, with a bootstrap 90% interval; familiarity near
    1 means the audited data holds such samples, near 0 that the estimate is a guess. --json adds
    the raw ensemble scores (loss_mean, loss_std, loss_q0..loss_q4) and the example samples.

    Example: llm2loss query spam-filter@v2 "an email written in HTML" "a mailing list reply"
    """
    model, version = parse_ref(ref)
    if not server:  # the server validates the phrases itself (and --server never imports torch)
        from llm2loss.query import validate_phrases

        phrases = validate_phrases(phrases)
    rows = open_audit(store, model, version, server).estimate(phrases).to_dict(orient="records")
    show(rows, as_json, make_table(f"Estimated loss of {model}@{version}", rows, cli_format.estimate_columns(rows)))


@app.command()
@friendly_errors
def compare(
    ref: str = typer.Argument(..., help="MODEL@VERSION of an audited release."),
    a: str = typer.Argument(..., help="First phrase (A)."),
    b: str = typer.Argument(..., help="Second phrase (B)."),
    store: Optional[str] = StoreOpt,
    as_json: bool = JsonOpt,
    server: Optional[str] = ServerOpt,
) -> None:
    """Does the model do worse on A than on B? A verdict, the percentile gap, P, and a sentence.

    verdict: "a worse", "b worse" or "uncertain" (stated only when the ensemble, the measured
    held-out samples and the encoder agree; else uncertain, with the reason). P(A worse): the share
    of ensemble members that estimate a higher loss for A. percentile gap: A's percentile minus
    B's among held-out samples; measured gap: the real loss difference of the samples each phrase
    retrieves, with a bootstrap 90% interval. --json adds the raw score gap (q0..q4) and examples.

    Example: llm2loss compare spam-filter@v2 "an email written in HTML" "a plain-text email"
    """
    model, version = parse_ref(ref)
    if not server:  # the server validates the phrases itself (and --server never imports torch)
        from llm2loss.query import validate_phrases

        a, b = validate_phrases([a, b])
    row = open_audit(store, model, version, server).compare(a, b)
    if as_json:
        print_json(row)
        return
    out = _out()
    out.print(make_table(f"{model}@{version}: A vs B", [row], cli_format.compare_columns(row)))
    for key in ("sentence", "reason"):
        if row.get(key) and (key == "sentence" or row.get("reason") not in str(row.get("sentence"))):
            out.print(Text(str(row[key])), soft_wrap=True)


@app.command()
@friendly_errors
def discover(
    ref: str = typer.Argument(..., help="MODEL@VERSION of an audited release."),
    vocab: Optional[str] = typer.Option(None, "--vocab", help="Built-in vocabulary name or a file with one phrase per line; default: the in-domain vocabulary for the audit's modality."),
    top_k: int = typer.Option(10, "--top-k", min=1, help="How many phrases to show."),
    store: Optional[str] = StoreOpt,
    as_json: bool = JsonOpt,
    server: Optional[str] = ServerOpt,
) -> None:
    """The phrases the model is estimated to fail on most, and the least familiar ones.

    The first table ranks phrases by estimated loss (percentile among held-out samples when the
    audit gives one, else the rank ensemble's raw score, named so); the second lists the phrases
    least like the audited data, by familiarity (P(the phrase looks like the audited data)).
    --json has every raw column.

    Example: llm2loss discover spam-filter@v2 --vocab email_topics --top-k 5
    """
    from llm2loss.vocab import load_vocabulary

    model, version = parse_ref(ref)
    phrases = load_vocabulary(vocab) if vocab is not None else None  # a bad name fails fast
    q = open_audit(store, model, version, server)  # a --vocab file is read here, never by a server
    names = [vocab] if vocab is not None else []
    if phrases is None:
        names, phrases = q.default_vocabulary()
    result = {"vocabulary": names, **q.discover(phrases, top_k)}
    if as_json:
        print_json(result)
        return
    out = _out()
    titles = {"highest_loss": "Highest estimated loss", "least_familiar": "Least familiar"}
    for key, title in titles.items():
        rows = result.get(key) or []
        if rows:
            out.print(make_table(f"{title} ({model}@{version}, vocabulary: {', '.join(names)})", rows,
                                 cli_format.discover_columns(rows, key)))


@app.command()
@friendly_errors
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Loopback address to listen on (the service has no authentication)."),
    port: int = typer.Option(8765, "--port", help="TCP port; 0 picks a free one (the printed URL names it)."),
    cache_size: int = typer.Option(4, "--cache-size", min=1, help="How many audits stay loaded at once."),
    threads: int = typer.Option(1, "--threads", min=1, help="Torch threads; 1 is fastest for one-phrase questions."),
    store: Optional[str] = StoreOpt,
) -> None:
    """A warm local query service and web page for every finished audit in the store.

    Keeps each audit's encoder and diagnosers loaded, answers estimate / compare / discover as
    JSON under /api, and serves a page at / (pick an audit, type phrases). Other commands use it
    with --server URL or LLM2LOSS_SERVER. Runs until Ctrl-C.

    Example: llm2loss serve --port 8765   (then open http://127.0.0.1:8765/)
    """
    from app.serve import serve as run_service

    run_service(host=host, port=port, settings=settings(store), cache_size=cache_size, threads=threads)


@app.command()
@friendly_errors
def report(
    ref: str = typer.Argument(..., help="MODEL@VERSION of an audited release."),
    store: Optional[str] = StoreOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Print the local path of the audit's HTML report (downloaded first when the store is S3).

    Example: llm2loss report spam-filter@v2   (then open the path in a browser)
    """
    from llm2loss import audits as finished

    model, version = parse_ref(ref)
    cfg = settings(store)
    manifest = finished.require_finished(_store(cfg), model, version)
    path = finished.local_report_path(_store(cfg), manifest, cfg.cache_dir)
    if as_json:
        print_json({"model": model, "version": version, "report": str(path)})
    else:
        typer.echo(str(path))


@app.command()
@friendly_errors
def gate(
    ref: str = typer.Argument(..., help="MODEL@VERSION of an audited release."),
    max_error_rise: float = typer.Option(
        DEFAULT_MAX_ERROR_RATE_RISE, "--max-error-rise", min=0.0,
        help="Fail when the held-out error rate rose by more than this (absolute: 0.02 = 2 points)."),
    store: Optional[str] = StoreOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Release gate: exit 1, one line per reason, when the audit found a regression; else exit 0.

    Fails when the audit found a significant regression against the previous version, or when the
    held-out error rate rose by more than --max-error-rise. Reads the finished audit only.

    Example: llm2loss gate spam-filter@v2 --max-error-rise 0.05 || exit 1
    """
    from llm2loss import audits as finished
    from llm2loss.gate import evaluate_gate, gate_lines

    model, version = parse_ref(ref)
    store_ = finished.open_store(settings(store).store)
    manifest = finished.require_finished(store_, model, version)
    result = evaluate_gate(manifest, finished.regression_of(store_, manifest),
                           max_error_rate_rise=max_error_rise)
    if as_json:
        print_json(result.to_dict())
    else:
        for line in gate_lines(result):
            typer.echo(line)
    if not result.passed:
        raise typer.Exit(1)


@app.command()
@friendly_errors
def demo(
    limit: Optional[int] = typer.Option(None, "--limit", min=20, help="Use only this many emails (a quick run)."),
    store: Optional[str] = StoreOpt,
    verbose: bool = VerboseOpt,
) -> None:
    """The main job: train two spam filters, register them, audit both, print what was found.

    Example: llm2loss demo --limit 400
    """
    from app.demo import run_demo

    run_demo(settings(store), limit=limit, console=_out(), verbose=verbose)


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
