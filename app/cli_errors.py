"""How the `llm2loss` command fails: one line, always.

- `friendly_errors` wraps a command: every exception becomes one `error: ...` line on stderr and
  exit status 1 (or, when the command was called with --json, a JSON object on stdout:
  {"error": ..., "type": ...}); LLM2LOSS_DEBUG=1 re-raises to show the traceback.
- `OneLineUsageErrors` is the command group: usage errors (missing argument, unknown option, bad
  value) are one `error:` line and exit status 2 instead of Typer's boxed panel.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from typing import Any, Callable

import typer
from pydantic import ValidationError
from typer.core import TyperGroup

from llm2loss.config import Settings
from llm2loss.errors import Llm2LossError

try:  # typer >= 0.2x carries its own copy of click; its commands raise that copy's exceptions
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - older typer on the real click
    from click import exceptions as click_errors

DEBUG_ENV = "LLM2LOSS_DEBUG"


def one_line(text: object) -> str:
    """`text` with every run of whitespace (newlines included) collapsed to one space."""
    return " ".join(str(text).split())


def fail(message: str, *, as_json: bool = False, kind: str = "Error") -> None:
    """Print `error: message` as one line on stderr and exit with status 1.

    With `as_json` the error is a JSON object on stdout instead ({"error": ..., "type": ...}), so
    a script reading --json output always gets JSON.
    """
    if as_json:
        sys.stdout.write(json.dumps({"error": one_line(message), "type": kind}) + "\n")
    else:
        typer.echo(f"error: {one_line(message)}", err=True)
    raise typer.Exit(1)


def _env_problems(exc: ValidationError) -> str:
    """Settings errors named by the environment variable that sets the field."""
    problems = []
    for item in exc.errors():
        name = "LLM2LOSS_" + "__".join(str(p) for p in item["loc"]).upper()
        problems.append(f"{name}: {item['msg']}")
    return "; ".join(problems)


def friendly_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn every failure into one line on stderr and exit code 1 (LLM2LOSS_DEBUG=1 re-raises).

    A command called with --json reports the failure as a JSON object on stdout instead.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:
            if os.environ.get(DEBUG_ENV):
                raise
            message, kind = error_message(exc)
            fail(message, as_json=bool(kwargs.get("as_json")), kind=kind)

    return wrapper


def error_message(exc: Exception) -> tuple[str, str]:
    """(the one-line message, the error's type name) for any failure of a command."""
    kind = type(exc).__name__
    if isinstance(exc, Llm2LossError):
        return str(exc), kind
    if isinstance(exc, ValidationError) and exc.title == Settings.__name__:
        return f"invalid setting in the environment: {_env_problems(exc)}; fix or unset it", "ConfigError"
    if isinstance(exc, ValidationError):
        from llm2loss.registry import validation_problems

        return f"invalid {exc.title}: {validation_problems(exc)}; fix these fields", "ConfigError"
    if isinstance(exc, (OSError, ValueError)):
        return f"{kind}: {exc}", kind
    return f"unexpected {kind}: {exc} (set {DEBUG_ENV}=1 to see the traceback)", kind


class OneLineUsageErrors(TyperGroup):
    """Usage errors (a missing argument, an unknown option, a bad value) as one `error:` line.

    Typer prints them as a boxed panel of 5-6 lines; a person and a CI log both read one line
    better: what is wrong and where the help is. Exit status 2, as click uses for usage errors.
    """

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        try:
            result = super().main(*args, standalone_mode=False, **kwargs)
        except click_errors.NoArgsIsHelpError as exc:
            typer.echo(exc.ctx.get_help() if exc.ctx else "llm2loss --help shows the commands")
            result = 0
        except click_errors.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx else "llm2loss"
            typer.echo(f"error: {one_line(exc.format_message())} (see `{where} --help`)", err=True)
            result = exc.exit_code
        except click_errors.ClickException as exc:
            typer.echo(f"error: {one_line(exc.format_message())}", err=True)
            result = exc.exit_code
        except typer.Abort:
            typer.echo("aborted", err=True)
            result = 1
        if not standalone_mode:
            return result
        sys.exit(result if isinstance(result, int) else 0)
