"""The `llm2loss` command: audit releases, ask audits questions, read their reports.

Output is a rich table by default and JSON with `--json`. Every expected failure (unknown model
or version, unfinished audit, empty phrase, wrong store credentials, ...) is one clear line on
stderr and a non-zero exit, never a traceback.

The CLI is the one front door that reaches up into the orchestration layer: `audit`, `register`
and `demo` import `flows` lazily, inside the command, so the library itself stays free of Prefect.
"""

from __future__ import annotations

import functools
import json
import math
import os
import sys
from pathlib import Path
from typing import Any, Callable, Optional

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from rich.text import Text

from llm2loss.config import ReleaseSpec, Settings
from llm2loss.errors import ConfigError, Llm2LossError
from llm2loss.names import validate_name

HELP = """Explain, in words, where a trained model fails and whom it treats worse.

Register a release, audit it, then ask the audit questions in plain words:

  llm2loss register release.json --weights v2.safetensors

  llm2loss audit spam-filter@v2

  llm2loss query spam-filter@v2 "an email written in HTML"

  llm2loss compare spam-filter@v2 "an email written in HTML" "a plain-text email"

  llm2loss discover spam-filter@v2

  llm2loss report spam-filter@v2

  llm2loss serve   (a warm query service and web page; then query ... --server http://127.0.0.1:8765)

The store is a folder (default ./llm2loss-store) or s3://bucket/prefix, set with --store or
LLM2LOSS_STORE__URI. S3 credentials come from the environment (AWS_*) only.
"""

app = typer.Typer(
    name="llm2loss",
    help=HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

JsonOpt = typer.Option(False, "--json", help="Print JSON instead of a table.")
StoreOpt = typer.Option(
    None, "--store",
    help="Store URI (folder or s3://bucket/prefix); default $LLM2LOSS_STORE__URI or ./llm2loss-store.",
)
ServerOpt = typer.Option(
    None, "--server", envvar="LLM2LOSS_SERVER",
    help="Ask a running `llm2loss serve` at this URL (e.g. http://127.0.0.1:8765) instead of loading the audit here; default $LLM2LOSS_SERVER.",
)
DEBUG_ENV = "LLM2LOSS_DEBUG"


def _out() -> Console:
    # Built per call so that the stream in use (a test runner's, a pipe) is the one written to.
    return Console(soft_wrap=False)


def one_line(text: object) -> str:
    """`text` with every run of whitespace (newlines included) collapsed to one space."""
    return " ".join(str(text).split())


def fail(message: str) -> None:
    """Print `error: message` as one line on stderr and exit with status 1."""
    typer.echo(f"error: {one_line(message)}", err=True)
    raise typer.Exit(1)


def _validation_problems(exc: ValidationError) -> str:
    problems = []
    for item in exc.errors():
        field = ".".join(str(p) for p in item["loc"]) or "(top level)"
        problems.append(f"{field}: {item['msg']}")
    return "; ".join(problems)


def _env_problems(exc: ValidationError) -> str:
    """Settings errors named by the environment variable that sets the field."""
    problems = []
    for item in exc.errors():
        name = "LLM2LOSS_" + "__".join(str(p) for p in item["loc"]).upper()
        problems.append(f"{name}: {item['msg']}")
    return "; ".join(problems)


def friendly_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn every failure into one line on stderr and exit code 1 (LLM2LOSS_DEBUG=1 re-raises)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:
            if os.environ.get(DEBUG_ENV):
                raise
            if isinstance(exc, Llm2LossError):
                fail(str(exc))
            if isinstance(exc, ValidationError) and exc.title == Settings.__name__:
                fail(f"invalid setting in the environment: {_env_problems(exc)}; fix or unset it")
            if isinstance(exc, ValidationError):
                fail(f"invalid {exc.title}: {_validation_problems(exc)}; fix these fields")
            if isinstance(exc, (OSError, ValueError)):
                fail(f"{type(exc).__name__}: {exc}")
            fail(f"unexpected {type(exc).__name__}: {exc} (set {DEBUG_ENV}=1 to see the traceback)")

    return wrapper


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


def make_table(title: str, rows: list[dict[str, Any]], columns: list[str]) -> Table:
    """A rich table of `rows`; cells are plain text (a phrase with [markup] prints as typed)."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*[Text(_fmt(row.get(c))) for c in columns])
    return table


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return "n/a" if not math.isfinite(value) else f"{value:.3f}"
    return "" if value is None else str(value)


def show(data: Any, as_json: bool, table: Table | None = None, empty: str | None = None) -> None:
    """JSON with --json; else the table, or the `empty` note when there are no rows."""
    if as_json:
        print_json(data)
    elif not data and empty:
        typer.echo(empty)
    elif table is not None:
        _out().print(table)


def _store(cfg: Settings) -> Any:
    from llm2loss import audit as stages

    return stages.get_store(cfg.store)


# --- commands --------------------------------------------------------------------------------


@app.command()
@friendly_errors
def audit(
    ref: str = typer.Argument(..., help="MODEL@VERSION of a registered release."),
    store: Optional[str] = StoreOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Audit a registered release through the Prefect flow, with a progress bar.

    Runs on a Dask LocalCluster, or on the cluster at $LLM2LOSS_DASK__ADDRESS. A finished audit
    is not repeated. Prints the headline findings and where the report is.

    Example: llm2loss audit spam-filter@v2 --store s3://audits/team-a
    """
    from llm2loss import registry

    model, version = parse_ref(ref)
    cfg = settings(store)
    release = registry.get(_store(cfg), model, version)  # unknown release: fail before any flow
    from flows.audit import run_audit

    manifest = run_audit(release.model, release.version, cfg, progress=not as_json)
    if as_json:
        print_json(manifest)
        return
    typer.echo(f"audit of {release.ref} completed")
    for finding in _findings(cfg, manifest):
        typer.echo(f"- {finding}")
    typer.echo(f"report: {manifest['report']} (local path: llm2loss report {release.ref})")


def _findings(cfg: Settings, manifest: dict[str, Any]) -> list[str]:
    """Headline findings of a finished audit, then the regression findings when there are any."""
    from llm2loss.report import headline_findings, regression_findings

    store = _store(cfg)
    findings = headline_findings(store.read_json(manifest["metrics"]))
    regression_key = manifest["metrics"].rsplit("/", 1)[0] + "/regression.json"
    if store.exists(regression_key):
        findings += regression_findings(store.read_json(regression_key))
    return findings


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
        raise ConfigError(f"{release_file} is not a valid release.json: {_validation_problems(exc)}; "
                          "fix these fields") from None
    key = registry.register(_store(settings(store)), release, weights_file=weights)
    typer.echo(f"registered {release.ref} at {key}")
    if no_event:
        return
    problem = emit_registered(release.model, release.version)
    if problem is None:
        typer.echo(f"emitted llm2loss.release.registered for {release.ref}")
    else:
        typer.echo(f"note: {one_line(problem)}", err=True)


def emit_registered(model: str, version: str) -> str | None:
    """Send `llm2loss.release.registered` to the Prefect API now; None, or why it was not sent.

    Sent synchronously (not through Prefect's background worker) so a failure is known here.
    """
    import asyncio
    import logging

    from prefect.events import Event
    from prefect.events.clients import get_events_client
    from prefect.settings import PREFECT_API_URL

    from flows.events import RELEASE_REGISTERED, release_resource

    if not PREFECT_API_URL.value():
        return (f"no Prefect API is configured (PREFECT_API_URL), so no event was emitted; the release "
                f"is registered: audit it with `llm2loss audit {model}@{version}`")
    event = Event(event=RELEASE_REGISTERED, resource=release_resource(model, version),
                  payload={"model": model, "version": version})

    async def send() -> None:
        async with get_events_client(reconnection_attempts=2) as client:
            await client.emit(event)

    quiet = logging.getLogger("prefect.events.clients")
    was_disabled, quiet.disabled = quiet.disabled, True  # its own warning would be a second line
    try:
        asyncio.run(send())
    except Exception as exc:  # noqa: BLE001 - any failure to reach the API is reported the same way
        return (f"could not emit {RELEASE_REGISTERED} to the Prefect API at {PREFECT_API_URL.value()} "
                f"({type(exc).__name__}: {exc}); the release is registered: audit it with "
                f"`llm2loss audit {model}@{version}`")
    finally:
        quiet.disabled = was_disabled
    return None


@app.command()
@friendly_errors
def releases(store: Optional[str] = StoreOpt, as_json: bool = JsonOpt) -> None:
    """List registered releases and whether each has a completed audit.

    Example: llm2loss releases --json
    """
    from llm2loss import audit as stages
    from llm2loss import registry

    cfg = settings(store)
    rows = [
        {
            "model": r.model,
            "version": r.version,
            "dataset": r.dataset.name,
            "task": r.task,
            "created_at": r.created_at.isoformat(timespec="seconds"),
            "audited": stages.audit_manifest(cfg.store, r.model, r.version) is not None,
        }
        for r in registry.list_releases(_store(cfg))
    ]
    show(rows, as_json, make_table("Releases", rows, ["model", "version", "dataset", "task", "created_at", "audited"]),
         empty=f"no releases registered in {_store(cfg).describe()}; register one with `llm2loss register`")


@app.command()
@friendly_errors
def audits(store: Optional[str] = StoreOpt, as_json: bool = JsonOpt) -> None:
    """List completed audits, whether each found a significant regression, and their reports.

    Example: llm2loss audits
    """
    from llm2loss import audit as stages
    from llm2loss import registry

    cfg = settings(store)
    rows = []
    for r in registry.list_releases(_store(cfg)):
        manifest = stages.audit_manifest(cfg.store, r.model, r.version)
        if manifest is not None:
            rows.append({
                "model": r.model, "version": r.version, "completed_at": manifest["completed_at"],
                "significant_regression": bool(manifest.get("significant_regression", False)),
                "report": manifest["report"],
            })
    show(rows, as_json,
         make_table("Audits", rows, ["model", "version", "completed_at", "significant_regression", "report"]),
         empty=f"no completed audits in {_store(cfg).describe()}; run one with `llm2loss audit MODEL@VERSION`")


@app.command()
@friendly_errors
def query(
    ref: str = typer.Argument(..., help="MODEL@VERSION of an audited release."),
    phrases: list[str] = typer.Argument(..., help="Phrases to estimate (each at most 300 characters)."),
    store: Optional[str] = StoreOpt,
    as_json: bool = JsonOpt,
    server: Optional[str] = ServerOpt,
) -> None:
    """Estimated loss and familiarity of each phrase, with the ensemble's uncertainty.

    loss_mean is the rank ensemble's score (higher: the model fails more on such samples),
    loss_std and loss_q1..loss_q3 its spread over the members; familiarity near 1 means the
    audited data holds such samples, near 0 that the estimate is a guess.

    Example: llm2loss query spam-filter@v2 "an email written in HTML" "a mailing list reply"
    """
    model, version = parse_ref(ref)
    if server:  # the server validates the phrases and answers from its warm audit
        from app.client import remote_audit

        q = remote_audit(server, model, version, store=store)
    else:
        from llm2loss.query import AuditQuery, validate_phrases

        phrases = validate_phrases(phrases)
        q = AuditQuery(settings(store).store, model, version)
    table = q.estimate(phrases)
    rows = table.to_dict(orient="records")
    columns = [c for c in ["phrase", "loss_mean", "loss_std", "loss_q1", "loss_q3", "familiarity_mean", "familiarity_std"]
               if c in table.columns]
    show(rows, as_json, make_table(f"Estimated loss of {model}@{version}", rows, columns))


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
    """P(the model does worse on A than on B), quartiles of the estimated gap, and a sentence.

    P is the share of ensemble members that estimate a higher loss for A; between 0.2 and 0.8
    the members disagree and the sentence says 'Uncertain'.

    Example: llm2loss compare spam-filter@v2 "an email written in HTML" "a plain-text email"
    """
    model, version = parse_ref(ref)
    if server:  # the server validates the phrases and answers from its warm audit
        from app.client import remote_audit

        q = remote_audit(server, model, version, store=store)
    else:
        from llm2loss.query import AuditQuery, validate_phrases

        a, b = validate_phrases([a, b])
        q = AuditQuery(settings(store).store, model, version)
    row = q.compare(a, b)
    if as_json:
        print_json(row)
        return
    out = _out()
    out.print(make_table(f"{model}@{version}: A vs B", [row],
                         ["phrase_a", "phrase_b", "p_a_worse", "q1", "q2", "q3", "uncertain"]))
    typer.echo(row["sentence"])


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

    mean/std/q1/q3 are the ensemble's estimated loss (or, for the least familiar table, its
    familiarity logits); familiarity is P(the phrase looks like the audited data).

    Example: llm2loss discover spam-filter@v2 --vocab email_topics --top-k 5
    """
    from llm2loss.vocab import load_vocabulary

    model, version = parse_ref(ref)
    phrases = load_vocabulary(vocab) if vocab is not None else None  # a bad name fails fast
    if server:  # a --vocab file is read here and its phrases sent: the server reads no paths
        from app.client import remote_audit

        q = remote_audit(server, model, version, store=store)
    else:
        from llm2loss.query import AuditQuery

        q = AuditQuery(settings(store).store, model, version)
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
                                 ["phrase", "mean", "std", "q1", "q3", "familiarity"]))


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
    from llm2loss import audit as stages
    from llm2loss.query import completed_manifest

    model, version = parse_ref(ref)
    cfg = settings(store)
    manifest = completed_manifest(cfg.store, model, version)
    path = stages.local_report_path(cfg, manifest)
    if as_json:
        print_json({"model": model, "version": version, "report": str(path)})
    else:
        typer.echo(str(path))


@app.command()
@friendly_errors
def demo(
    limit: Optional[int] = typer.Option(None, "--limit", min=20, help="Use only this many emails (a quick run)."),
    store: Optional[str] = StoreOpt,
) -> None:
    """The main job: train two spam filters, register them, audit both, print what was found.

    Example: llm2loss demo --limit 400
    """
    from llm2loss.demo import run_demo

    run_demo(settings(store), limit=limit, console=_out())


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
