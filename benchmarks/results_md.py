"""benchmarks/RESULTS.md, shared by every benchmark: each owns one `## ...` section of it.

Also the one timing helper the speed benchmarks share (median wall time of repeated calls).
"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

RESULTS = Path(__file__).parent / "RESULTS.md"


def write_section(lines: Sequence[str] | str, results: Path | None = None) -> str:
    """Replace (or append) one section of RESULTS.md, leaving the others alone.

    `lines` is the whole section, starting with its own `## Name` heading line; the section
    replaced is the one with that heading, up to the next `## ` heading. Returns the heading.
    """
    results = results or RESULTS
    block = (lines if isinstance(lines, str) else "\n".join(lines)).strip("\n") + "\n"
    heading = block.splitlines()[0]
    if not heading.startswith("## "):
        raise ValueError(f"a RESULTS.md section must start with a '## ' heading, not {heading!r}")
    text = results.read_text() if results.exists() else "# Benchmark results\n"
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: block + "\n", text, count=1).rstrip() + "\n"
    else:
        text = text.rstrip() + "\n\n" + block
    results.write_text(text)
    return heading


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time (s) of `repeats` calls of `fn`."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
