"""Where Prefect's and Dask's log lines go when a person runs an audit from the command line.

By default none reach the console: the flow's and tasks' lines still go to the Prefect API (the
UI shows them), and every line of this process (Prefect, the temporary server, the Dask scheduler
and nannies) is written to a log file. `--verbose` keeps Prefect's console output as it is.

The console switch is an environment setting (`PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL`), made
before Prefect configures logging, so Dask worker processes started later inherit it too.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

CONSOLE_LEVEL_ENV = "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"
FILE_FORMAT = "%(asctime)s | %(levelname)-7s | %(name)s - %(message)s"
FLOW_RUN_FORMAT = "%(asctime)s | %(levelname)-7s | Flow run %(flow_run_name)r - %(message)s"
TASK_RUN_FORMAT = "%(asctime)s | %(levelname)-7s | Task run %(task_run_name)r - %(message)s"


def log_file_for(cache_dir: str, what: str) -> Path:
    """`<cache_dir>/logs/<what>-<UTC time>.log` (the folder is created)."""
    folder = Path(cache_dir).expanduser() / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in what)
    return folder / f"{safe}-{stamp}.log"


@contextlib.contextmanager
def console_logging(log_file: Path, *, verbose: bool = False) -> Iterator[Path]:
    """Inside the block: Prefect/Dask log lines off the console (unless `verbose`), all in `log_file`.

    Dask's loggers are sent through the root logger (Prefect's console handler, raised above
    ERROR, and the file) rather than their own stderr handler: a LocalCluster resets that handler
    to WARNING when it starts (`silence_logs`), which would print its shutdown warnings.
    Everything is put back on exit (environment, handlers, levels), so a process that runs
    several commands (a test session) is left as it was.
    """
    saved_env = os.environ.get(CONSOLE_LEVEL_ENV)
    if not verbose:
        os.environ[CONSOLE_LEVEL_ENV] = "CRITICAL"  # above ERROR: a failed run is our one error line
    from prefect.logging.configuration import ensure_logging_setup

    ensure_logging_setup()  # before distributed is imported, so its loggers propagate to the root
    import distributed  # noqa: F401

    handler = logging.FileHandler(log_file, encoding="utf-8")
    handler.setFormatter(RunFormatter())
    root, dask_logger = logging.getLogger(), logging.getLogger("distributed")
    root.addHandler(handler)
    saved_dask = (dask_logger.level, dask_logger.propagate, list(dask_logger.handlers))
    if not verbose:
        for own in saved_dask[2]:
            dask_logger.removeHandler(own)
        dask_logger.propagate = True
    dask_logger.setLevel(logging.INFO)  # this process's scheduler and nannies: INFO, in the file
    saved_levels = _console_handlers_to(logging.CRITICAL) if not verbose else {}
    try:
        yield log_file
    finally:
        root.removeHandler(handler)
        handler.close()
        dask_logger.setLevel(saved_dask[0])
        dask_logger.propagate = saved_dask[1]
        for own in saved_dask[2]:
            if own not in dask_logger.handlers:
                dask_logger.addHandler(own)
        for console, level in saved_levels.items():
            console.setLevel(level)
        if saved_env is None:
            os.environ.pop(CONSOLE_LEVEL_ENV, None)
        else:
            os.environ[CONSOLE_LEVEL_ENV] = saved_env


class RunFormatter(logging.Formatter):
    """Prefect's line formats: the flow or task run's name when the record has one."""

    def __init__(self) -> None:
        super().__init__(FILE_FORMAT)
        self._flow = logging.Formatter(FLOW_RUN_FORMAT)
        self._task = logging.Formatter(TASK_RUN_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        if getattr(record, "task_run_name", None):
            return self._task.format(record)
        if getattr(record, "flow_run_name", None):
            return self._flow.format(record)
        return super().format(record)


def _console_handlers_to(level: int) -> dict[logging.Handler, int]:
    """Raise every console handler (Prefect's, distributed's stderr one) to `level`; old levels."""
    loggers = [logging.getLogger(), *[logging.getLogger(n) for n in list(logging.root.manager.loggerDict)]]
    saved: dict[logging.Handler, int] = {}
    for logger in loggers:
        for handler in getattr(logger, "handlers", []):
            if isinstance(handler, logging.FileHandler) or handler in saved:
                continue
            if isinstance(handler, logging.StreamHandler) or type(handler).__name__ == "PrefectConsoleHandler":
                saved[handler] = handler.level
                handler.setLevel(level)
    return saved
