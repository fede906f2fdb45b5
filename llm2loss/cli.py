"""The `llm2loss` command: audit releases, ask audits questions, read their reports.

Output is a rich table by default and JSON with `--json`. Every expected failure (unknown model
or version, unfinished audit, empty phrase, wrong store credentials, ...) is one clear line on
stderr and a non-zero exit, never a traceback.

The CLI is the one front door that reaches up into the orchestration layer: `audit` and `demo`
import `flows` lazily, inside the command, so the library itself stays free of Prefect.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Any, Callable, Optional

import typer
from rich.console import Console
from rich.table import Table

from llm2loss.config import ReleaseSpec, Settings
from llm2loss.errors import ConfigError, Llm2LossError
from llm2loss.names import validate_name

app = typer.Typer(
    name="llm2loss",
    help="Explain, in words, where a trained model fails and whom it treats worse.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)

JsonOpt = typer.Option(False, "--json", help="Print JSON instead of a table.")
StoreOpt = typer.Option(None, "--store", help="Store URI (folder or s3://bucket/prefix); default $LLM2LOSS_STORE__URI or ./llm2loss-store.")


def friendly_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn expected failures into one line on stderr and exit code 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except Llm2LossError as exc:
            err.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True)
            raise typer.Exit(1) from None
        except (OSError, ValueError) as exc:  # pydantic validation, unreadable files
            err.print(f"[bold red]error:[/] {type(exc).__name__}: {_one_line(exc)}", highlight=False)
            raise typer.Exit(1) from None

    return wrapper


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:500]


def settings(store: Optional[str]) -> Settings:
    """Settings from the environment, with the --store option on top."""
    cfg = Settings()
    if store:
        cfg.store.uri = store
    return cfg


def parse_ref(ref: str) -> tuple[str, str]:
    """`MODEL@VERSION` -> (model, version), both validated."""
    model, sep, version = ref.partition("@")
    if not sep:
        raise ConfigError(f"{ref!r} is not MODEL@VERSION: write it like spam-filter@v2")
    return validate_name(model, "model name"), validate_name(version, "version")


def emit(data: Any, as_json: bool, table: Table | None = None) -> None:
    """Print JSON or a table."""
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    elif table is not None:
        out.print(table)


def _table(title: str, rows: list[dict[str, Any]], columns: list[str]) -> Table:
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*[_fmt(row.get(c)) for c in columns])
    return table


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return "" if value is None else str(value)


@app.command()
@friendly_errors
def audit(
    ref: str = typer.Argument(..., help="MODEL@VERSION of a registered release."),
    store: Optional[str] = StoreOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Audit a registered release through the Prefect flow (with a progress bar).

    Example: llm2loss audit spam-filter@v2
    """
    from flows.audit import run_audit

    model, version = parse_ref(ref)
    cfg = settings(store)
    manifest = run_audit(model, version, cfg, progress=not as_json)
    if as_json:
        emit(manifest, True)
    else:
        out.print(f"audit of {model}@{version} completed; report: {manifest['report']}")


@app.command()
@friendly_errors
def register(
    release_file: Path = typer.Argument(..., exists=True, dir_okay=False, help="release.json to register."),
    weights: Optional[Path] = typer.Option(None, "--weights", exists=True, dir_okay=False, help="Weights file (.safetensors or .pt) stored with the release."),
    store: Optional[str] = StoreOpt,
    no_event: bool = typer.Option(False, "--no-event", help="Do not emit llm2loss.release.registered."),
) -> None:
    """Register a release and emit `llm2loss.release.registered` (which triggers its audit).

    Example: llm2loss register examples/releases/spam-filter/v2/release.json --weights v2.safetensors
    """
    from llm2loss import audit as stages
    from llm2loss import registry

    release = ReleaseSpec.model_validate_json(release_file.read_text())
    key = registry.register(stages.get_store(settings(store).store), release, weights_file=weights)
    if not no_event:
        from flows.events import emit_release_registered

        emit_release_registered(release.model, release.version)
    out.print(f"registered {release.ref} at {key}")


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
        for r in registry.list_releases(stages.get_store(cfg.store))
    ]
    emit(rows, as_json, _table("Releases", rows, ["model", "version", "dataset", "task", "created_at", "audited"]))


@app.command()
@friendly_errors
def audits(store: Optional[str] = StoreOpt, as_json: bool = JsonOpt) -> None:
    """List completed audits with their report locations.

    Example: llm2loss audits
    """
    from llm2loss import audit as stages
    from llm2loss import registry

    cfg = settings(store)
    rows = []
    for r in registry.list_releases(stages.get_store(cfg.store)):
        manifest = stages.audit_manifest(cfg.store, r.model, r.version)
        if manifest is not None:
            rows.append({
                "model": r.model, "version": r.version, "completed_at": manifest["completed_at"],
                "significant_regression": manifest.get("significant_regression", False),
                "report": manifest["report"],
            })
    emit(rows, as_json, _table("Audits", rows, ["model", "version", "completed_at", "significant_regression", "report"]))


@app.command()
@friendly_errors
def query(
    ref: str = typer.Argument(..., help="MODEL@VERSION of an audited release."),
    phrases: list[str] = typer.Argument(..., help="Phrases to estimate."),
    store: Optional[str] = StoreOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Estimated loss and familiarity of each phrase, with the ensemble's uncertainty.

    Example: llm2loss query spam-filter@v2 "an email written in HTML" "a mailing list reply"
    """
    from llm2loss.query import AuditQuery

    model, version = parse_ref(ref)
    table = AuditQuery(settings(store).store, model, version).estimate(phrases)
    rows = table.to_dict(orient="records")
    columns = [c for c in ["phrase", "loss_mean", "loss_std", "loss_q1", "loss_q3", "familiarity_mean", "familiarity_std"] if c in table.columns]
    emit(rows, as_json, _table(f"Estimated loss of {model}@{version}", rows, columns))


@app.command()
@friendly_errors
def compare(
    ref: str = typer.Argument(..., help="MODEL@VERSION of an audited release."),
    a: str = typer.Argument(..., help="First phrase."),
    b: str = typer.Argument(..., help="Second phrase."),
    store: Optional[str] = StoreOpt,
    as_json: bool = JsonOpt,
) -> None:
    """P(the model does worse on A than on B), quartiles of the estimated gap, and a sentence.

    Example: llm2loss compare spam-filter@v2 "an email written in HTML" "a plain-text email"
    """
    from llm2loss.query import AuditQuery

    model, version = parse_ref(ref)
    row = AuditQuery(settings(store).store, model, version).compare(a, b)
    if as_json:
        emit(row, True)
        return
    out.print(_table(f"{model}@{version}: A vs B", [row], [c for c in row if c != "sentence"]))
    out.print(row["sentence"], highlight=False, markup=False)


@app.command()
@friendly_errors
def discover(
    ref: str = typer.Argument(..., help="MODEL@VERSION of an audited release."),
    vocab: str = typer.Option("", "--vocab", help="Built-in vocabulary name or a file with one phrase per line; default: the audit's in-domain vocabulary."),
    top_k: int = typer.Option(10, "--top-k", min=1, help="How many phrases to show."),
    store: Optional[str] = StoreOpt,
    as_json: bool = JsonOpt,
) -> None:
    """The phrases the model is estimated to fail on most, and the least familiar ones.

    Example: llm2loss discover spam-filter@v2 --vocab email_topics
    """
    from llm2loss.query import AuditQuery
    from llm2loss.vocab import load_vocabulary, vocabularies_for

    model, version = parse_ref(ref)
    q = AuditQuery(settings(store).store, model, version)
    if vocab:
        phrases = load_vocabulary(vocab)
    else:
        vocabs = vocabularies_for(q.manifest.get("summary", {}).get("modality", "text"), [])
        phrases = next(iter(vocabs.values()))
    result = q.discover(phrases, top_k)
    if as_json:
        emit(result, True)
        return
    for name, rows in result.items():
        if isinstance(rows, list) and rows:
            out.print(_table(f"{name} ({model}@{version})", rows, list(rows[0].keys())))


@app.command()
@friendly_errors
def report(
    ref: str = typer.Argument(..., help="MODEL@VERSION of an audited release."),
    store: Optional[str] = StoreOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Print the path of the audit's HTML report (downloaded first when the store is S3).

    Example: llm2loss report spam-filter@v2
    """
    from llm2loss.query import AuditQuery  # noqa: F401  (same not-found errors as the others)
    from llm2loss import audit as stages

    model, version = parse_ref(ref)
    cfg = settings(store)
    manifest = stages.audit_manifest(cfg.store, model, version)
    if manifest is None:
        AuditQuery(cfg.store, model, version)  # raises the right error
    path = stages.local_report_path(cfg, manifest)
    emit({"report": str(path)}, as_json)
    if not as_json:
        out.print(str(path), highlight=False)


@app.command()
@friendly_errors
def demo(
    limit: Optional[int] = typer.Option(None, "--limit", help="Use only this many emails (a quick run)."),
    store: Optional[str] = StoreOpt,
) -> None:
    """The main job: train two spam filters, register them, audit both, print what was found.

    Example: llm2loss demo
    """
    from llm2loss.demo import run_demo

    run_demo(settings(store), limit=limit, console=out)


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
