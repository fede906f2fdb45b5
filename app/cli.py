"""The `llm2loss` command: audit releases, ask audits questions, read their reports.

Output is a rich table by default and JSON with `--json`. Every expected failure (unknown model
or version, unfinished audit, empty phrase, wrong store credentials, ...) is one clear line on
stderr and a non-zero exit, never a traceback.

The CLI is the one front door that reaches up into the orchestration layer: `audit`, `register`
and `demo` import `flows` lazily, inside the command, so the library itself stays free of Prefect.
This module holds the app and the question commands; `app.cli_releases` the release and audit
commands, `app.cli_common` the options and output helpers they share, `app.cli_errors` failures.
"""

from __future__ import annotations

from typing import Any, Optional

import typer
from rich.text import Text

from app import cli_format
from app.cli_common import (JsonOpt, ServerOpt, StoreOpt, VerboseOpt, make_table, open_store, parse_ref,
                            print_json, settings, show)
from app.cli_errors import OneLineUsageErrors, friendly_errors
from app.cli_releases import audit, audits, register, releases
from llm2loss.gate import DEFAULT_MAX_ERROR_RATE_RISE

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



app = typer.Typer(
    name="llm2loss",
    cls=OneLineUsageErrors,
    help=HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
for command in (audit, register, releases, audits):  # app.cli_releases; first in the help, as before
    app.command()(command)


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
    out = cli_format.console()
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
    out = cli_format.console()
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
    manifest = finished.require_finished(open_store(cfg), model, version)
    path = finished.local_report_path(open_store(cfg), manifest, cfg.cache_dir)
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

    run_demo(settings(store), limit=limit, console=cli_format.console(), verbose=verbose)


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
