"""How the `llm2loss` command prints answers: the report's units, named columns, no truncation.

Human output speaks the report's language: a phrase's *percentile* among held-out samples (and
its spread over the ensemble), P(above the median sample), the *measured* loss of the held-out
samples the phrase retrieves, and for a comparison the percentile gap and the verdict ("a worse",
"b worse", "uncertain") with its reason. Raw ensemble scores (loss_mean, q0..q4) are in `--json`
only. Each table picks the columns its rows have, so an answer missing a column (an older audit,
an older AuditQuery) prints what it has rather than failing; with no percentile at all, the raw
score is shown under a name that says so.

Tables never truncate: on a terminal long cells fold onto more lines, and through a pipe the
console is as wide as the table needs (a pipe has no width).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable

from rich.console import Console
from rich.table import Table
from rich.text import Text

PIPE_WIDTH = 10_000


def console(*, stderr: bool = False) -> Console:
    """A console on stdout (or stderr): the terminal's width, or unbounded when piped."""
    probe = Console(stderr=stderr)
    width = None if probe.is_terminal else PIPE_WIDTH
    return Console(stderr=stderr, width=width, soft_wrap=False)


@dataclass(frozen=True)
class Column:
    """A named column: the header a person reads, the row key, and how a value prints."""

    header: str
    key: str
    fmt: Callable[[Any, dict[str, Any]], str] | None = None


def number(value: Any, digits: int = 3) -> str:
    """A float to `digits` decimals; n/a for None, NaN or inf; bools as yes/no."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return "n/a" if isinstance(value, float) and not math.isfinite(value) else (
            f"{value:.{digits}f}" if isinstance(value, float) else str(value))
    return "" if value is None else str(value)


def cell(value: Any) -> str:
    """A cell's text: floats to 3 decimals, bools yes/no, None empty."""
    return number(value)


def make_table(title: str, rows: Sequence[dict[str, Any]], columns: Sequence[Column | str]) -> Table:
    """A rich table of `rows` under named columns; cells are plain text (never rich markup)."""
    cols = [c if isinstance(c, Column) else Column(c, c) for c in columns]
    table = Table(title=title, title_justify="left")
    for column in cols:
        table.add_column(Text(column.header), overflow="fold")  # "[q1, q3]" is text, not markup
    for row in rows:
        table.add_row(*[Text(column.fmt(row.get(column.key), row) if column.fmt else cell(row.get(column.key)))
                        for column in cols])
    return table


def present(rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> list[Column]:
    """The columns whose key at least one row has."""
    return [c for c in columns if any(c.key in row for row in rows)]


def _pct(value: Any, _row: dict[str, Any]) -> str:
    return number(value, 0) if isinstance(value, (int, float)) and not isinstance(value, bool) else cell(value)


def _signed_pct(value: Any, _row: dict[str, Any]) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return f"{value:+.1f}"
    return cell(value)


def _p(value: Any, _row: dict[str, Any]) -> str:
    return number(value, 2)


def _interval(low_key: str, high_key: str) -> Callable[[Any, dict[str, Any]], str]:
    def fmt(value: Any, row: dict[str, Any]) -> str:
        if value is None:
            return "n/a"
        low, high = row.get(low_key), row.get(high_key)
        text = number(value)
        if isinstance(low, (int, float)) and isinstance(high, (int, float)):
            text += f" [{number(low)}, {number(high)}]"
        return text
    return fmt


def _familiarity(value: Any, row: dict[str, Any]) -> str:
    std = row.get("familiarity_std")
    return number(value, 2) + (f" ± {number(std, 2)}" if isinstance(std, (int, float)) else "")


def _percentile_spread(value: Any, row: dict[str, Any]) -> str:
    std = row.get("percentile_std")
    return _pct(value, row) + (f" ± {number(std, 0)}" if isinstance(std, (int, float)) else "")


def _score_spread(value: Any, row: dict[str, Any]) -> str:
    std = row.get("loss_std")
    return number(value) + (f" ± {number(std)}" if isinstance(std, (int, float)) else "")


ESTIMATE_COLUMNS = [
    Column("phrase", "phrase"),
    Column("percentile (± members)", "percentile", _percentile_spread),
    Column("P(above median)", "p_above_median", _p),
    Column("measured loss [95% CI]", "measured_loss", _interval("measured_low", "measured_high")),
    Column("samples", "n_retrieved"),
    Column("familiarity", "familiarity_mean", _familiarity),
]
#: Shown only when the answer has no percentile: the raw score, named as such.
ESTIMATE_RAW = Column("rank score (± members; higher = worse)", "loss_mean", _score_spread)

COMPARE_COLUMNS = [
    Column("A", "phrase_a"),
    Column("B", "phrase_b"),
    Column("verdict", "verdict"),
    Column("P(A worse)", "p_a_worse", _p),
    Column("percentile gap A - B", "percentile_diff", _signed_pct),
    Column("measured gap [95% CI]", "measured_diff", _interval("measured_low", "measured_high")),
    Column("samples A / B", "n_a", lambda v, r: f"{cell(v)} / {cell(r.get('n_b'))}"),
]
COMPARE_RAW = Column("score gap A - B (median [q1, q3])", "q2",
                     lambda v, r: f"{number(v)} [{number(r.get('q1'))}, {number(r.get('q3'))}]")

DISCOVER_LOSS_COLUMNS = [
    Column("phrase", "phrase"),
    Column("percentile (± members)", "percentile", _percentile_spread),
    Column("familiarity", "familiarity", _p),
]
DISCOVER_RAW = Column("rank score (± members)", "mean", lambda v, r: number(v) + (
    f" ± {number(r.get('std'))}" if isinstance(r.get("std"), (int, float)) else ""))
DISCOVER_FAMILIAR_COLUMNS = [
    Column("phrase", "phrase"),
    Column("familiarity P(looks like the data)", "familiarity", _p),
]


def estimate_columns(rows: Sequence[dict[str, Any]]) -> list[Column]:
    """Columns of the `query` table: percentiles and measurements, else the named raw score."""
    columns = present(rows, ESTIMATE_COLUMNS)
    if not any("percentile" in row for row in rows):
        columns.insert(1, ESTIMATE_RAW)
    return columns


def compare_columns(row: dict[str, Any]) -> list[Column]:
    """Columns of the `compare` table: verdict and percentile gap, else the named raw gap."""
    columns = present([row], COMPARE_COLUMNS)
    if "verdict" not in row and "uncertain" in row:
        columns.insert(2, Column("uncertain", "uncertain"))
    if "percentile_diff" not in row:
        columns.append(COMPARE_RAW)
    return columns


def discover_columns(rows: Sequence[dict[str, Any]], kind: str) -> list[Column]:
    """Columns of a `discover` table (`kind` is highest_loss or least_familiar)."""
    if kind == "least_familiar":
        return present(rows, DISCOVER_FAMILIAR_COLUMNS)
    columns = present(rows, DISCOVER_LOSS_COLUMNS)
    if not any("percentile" in row for row in rows):
        columns.insert(1, DISCOVER_RAW)
    return columns
