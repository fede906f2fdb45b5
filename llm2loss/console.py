"""What a person sees while an audit runs: one line per stage, one progress bar per sharded stage.

`StageConsole` writes to a rich Console: `stage(name)` shows a spinner while the stage runs (on a
terminal) and one line when it ends (`  plan  2 shards of 80, embeddings to compute  21.4 s`);
`shards(name, total)` is one progress bar that ends as one line. Findings print numbered and
unwrapped (`print_findings`), so a terminal or a pipe gets whole sentences.

The pipeline calls the module-level `stage()` and `shards()`: they use the console installed with
`use(console)` by the command that started the audit, and do nothing otherwise (a deployment run
or a test), so the flow code is the same either way. Nothing here imports Prefect or Dask.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

INDENT = "  "
NAME_WIDTH = 18


@dataclass
class StageNote:
    """What a running stage will say when it ends (set `detail` inside the `with` block)."""

    detail: str = ""


def _seconds(value: float) -> str:
    return f"{value:.1f} s" if value < 100 else f"{value:.0f} s"


class StageConsole:
    """Stage lines and shard progress bars on one rich Console."""

    def __init__(self, console: Console, *, bars: bool = True) -> None:
        self.console = console
        self.bars = bars

    def line(self, text: str, *, style: str | None = None) -> None:
        """One plain line (never read as markup, never wrapped)."""
        self.console.print(Text(text, style=style or ""), soft_wrap=True, highlight=False)

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[StageNote]:
        """A stage: a spinner while it runs (terminals only), then one line with its time."""
        note = StageNote()
        start = time.perf_counter()
        spinner = (self.console.status(f"{INDENT}{name} ...") if self.bars and self.console.is_terminal
                   else contextlib.nullcontext())
        with spinner:
            yield note
        detail = f"  {note.detail}" if note.detail else ""
        self.line(f"{INDENT}{name:<{NAME_WIDTH}}{detail}  ({_seconds(time.perf_counter() - start)})")

    @contextlib.contextmanager
    def shards(self, name: str, total: int) -> Iterator[Callable[[], None]]:
        """One progress bar over `total` shards; yields `advance()`. Ends as one line."""
        if not self.bars:
            start = time.perf_counter()
            yield lambda: None
            self.line(f"{INDENT}{name:<{NAME_WIDTH}}{total} shards  ({_seconds(time.perf_counter() - start)})")
            return
        columns = (TextColumn(f"{INDENT}{name:<{NAME_WIDTH}}"), BarColumn(bar_width=30),
                   MofNCompleteColumn(), TextColumn("shards"), TimeElapsedColumn())
        with Progress(*columns, console=self.console, transient=False,
                      redirect_stdout=False, redirect_stderr=False) as progress:
            task = progress.add_task(name, total=total)
            yield lambda: progress.advance(task)


_active: StageConsole | None = None


@contextlib.contextmanager
def use(console: StageConsole | None) -> Iterator[StageConsole | None]:
    """Install `console` for the pipeline's `stage()` / `shards()` calls inside the block."""
    global _active
    previous, _active = _active, console
    try:
        yield console
    finally:
        _active = previous


def active() -> StageConsole | None:
    """The installed console, or None."""
    return _active


@contextlib.contextmanager
def stage(name: str) -> Iterator[StageNote]:
    """`StageConsole.stage` on the installed console; a silent note when there is none."""
    if _active is None:
        yield StageNote()
        return
    with _active.stage(name) as note:
        yield note


@contextlib.contextmanager
def shards(name: str, total: int) -> Iterator[Callable[[], None]]:
    """`StageConsole.shards` on the installed console; a no-op `advance` when there is none."""
    if _active is None or total == 0:
        yield lambda: None
        return
    with _active.shards(name, total) as advance:
        yield advance


def print_findings(console: Console, title: str, findings: Iterable[object], *, empty: str = "(none)") -> int:
    """`title`, then the findings numbered 1., 2., ... one unwrapped line each; returns the count."""
    console.print(Text(title, style="bold"), soft_wrap=True)
    count = 0
    for count, finding in enumerate(findings, start=1):
        console.print(Text(f"{INDENT}{count}. {' '.join(str(finding).split())}"), soft_wrap=True, highlight=False)
    if count == 0:
        console.print(Text(f"{INDENT}{empty}"), soft_wrap=True)
    return count
