"""What every `llm2loss` command shares: its options, settings, MODEL@VERSION, JSON and table output."""

from __future__ import annotations

import json
import sys
from typing import Any, Optional

import typer
from rich.table import Table

from app import cli_format
from llm2loss.config import Settings
from llm2loss.errors import ConfigError
from llm2loss.jsonable import jsonable
from llm2loss.store.keys import validate_name

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
        cli_format.console().print(table)



def open_store(cfg: Settings) -> Any:
    """The store the settings name (`llm2loss.audits.open_store`)."""
    from llm2loss import audits as finished

    return finished.open_store(cfg.store)
