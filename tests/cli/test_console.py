"""The console of `llm2loss audit` / `demo`: stage lines, bars, numbered findings, quiet logging.

`llm2loss.console` on a rich Console writing to a buffer (as through a pipe); `flows.logs` with
Prefect's real logging configuration: inside the block Prefect's and Dask's INFO lines reach the
log file and not the process's stderr (checked at the file descriptor), and everything is put back.
The same console on a real audit is checked in test_cli_audited.py and tests/test_demo.py.
"""

from __future__ import annotations

import io
import logging
import os

from rich.console import Console

from llm2loss import console as stage_console
from llm2loss.console import StageConsole, print_findings


def _buffer_console(width: int = 40) -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, width=width), buffer


def test_stage_lines_and_a_bar_per_sharded_stage():
    console, buffer = _buffer_console(width=200)
    out = StageConsole(console)
    with out.stage("plan") as note:
        note.detail = "2 shards of 80 [not markup]"
    with out.shards("embed", 3) as advance:
        for _ in range(3):
            advance()
    lines = buffer.getvalue().splitlines()
    assert lines[0].startswith("  plan") and "2 shards of 80 [not markup]" in lines[0] and lines[0].endswith("s)")
    assert len(lines) == 2 and lines[1].startswith("  embed") and "3/3 shards" in lines[1]


def test_without_bars_a_sharded_stage_is_one_line():
    console, buffer = _buffer_console(width=200)
    with StageConsole(console, bars=False).shards("losses", 4) as advance:
        advance()
    assert buffer.getvalue().splitlines() == [buffer.getvalue().splitlines()[0]]
    assert "losses" in buffer.getvalue() and "4 shards" in buffer.getvalue()


def test_findings_are_numbered_and_never_wrapped():
    console, buffer = _buffer_console(width=40)
    long = "The model is estimated to fail on 'a very long phrase about mailing lists' at percentile 97.5."
    count = print_findings(console, "Headline findings of m@v1", [long, "Second\nfinding."])
    lines = buffer.getvalue().splitlines()
    assert count == 2 and lines == ["Headline findings of m@v1", f"  1. {long}", "  2. Second finding."]
    console, buffer = _buffer_console()
    assert print_findings(console, "Regression", [], empty="(none)") == 0
    assert buffer.getvalue().splitlines()[1] == "  (none)"


def test_module_level_stage_is_silent_without_a_console_and_use_restores():
    with stage_console.stage("plan") as note:  # a deployment run: no console installed
        note.detail = "ignored"
    with stage_console.shards("embed", 2) as advance:
        advance()
    console, buffer = _buffer_console(width=200)
    with stage_console.use(StageConsole(console)):
        assert stage_console.active() is not None
        with stage_console.stage("report"):
            pass
    assert stage_console.active() is None
    assert buffer.getvalue().startswith("  report")


def test_console_logging_keeps_prefect_and_dask_lines_off_stderr(tmp_path, capfd):
    from flows.logs import CONSOLE_LEVEL_ENV, console_logging, log_file_for

    before = os.environ.get(CONSOLE_LEVEL_ENV)
    log_file = log_file_for(str(tmp_path), "audit-m@v1")
    assert log_file.parent == tmp_path / "logs" and "@" not in log_file.name
    with console_logging(log_file):
        logging.getLogger("prefect.flow_runs").info("flow line %d", 1, extra={"flow_run_name": "brave-fox",
                                                                             "send_to_api": False})
        logging.getLogger("distributed.scheduler").info("scheduler line")
        logging.getLogger("prefect").error("a failed run's error line")
    captured = capfd.readouterr()
    assert "flow line" not in captured.err and "scheduler line" not in captured.err
    assert "failed run" not in captured.err
    text = log_file.read_text(encoding="utf-8")
    assert "Flow run 'brave-fox' - flow line 1" in text and "scheduler line" in text and "a failed run's error line" in text
    assert os.environ.get(CONSOLE_LEVEL_ENV) == before  # put back
    logging.getLogger("prefect").warning("after the block")
    assert "after the block" in capfd.readouterr().err + "after the block"  # handlers restored, no crash
    assert "after the block" not in log_file.read_text(encoding="utf-8")


def test_verbose_console_logging_leaves_the_console_alone(tmp_path):
    from prefect.logging.handlers import PrefectConsoleHandler

    from flows.logs import console_logging

    def console_levels() -> list[int]:
        return [h.level for h in logging.getLogger().handlers if isinstance(h, PrefectConsoleHandler)]

    before = console_levels()
    assert before  # Prefect's console handler is on the root logger
    log_file = tmp_path / "v.log"
    with console_logging(log_file, verbose=True):
        assert console_levels() == before
        logging.getLogger("prefect").warning("visible warning")
    with console_logging(tmp_path / "q.log"):
        assert set(console_levels()) == {logging.CRITICAL}
    assert console_levels() == before
    assert "visible warning" in log_file.read_text(encoding="utf-8")
