"""Store keys the pipeline writes that `llm2loss.layout` has no function for yet.

Kept in this one place (validated with `layout.check_key`) so no stage joins key strings itself;
they belong in the store's key module and move there when it gains them. Their stored names are
those older stores hold (`failures-00000.json` beside each part), so old stores still read.
"""

from __future__ import annotations

from llm2loss import layout
from llm2loss.errors import ConfigError

METRICS_FILE = "metrics.json"
REGRESSION_FILE = "regression.json"
INDEX_FILE = "index.html"


def unreadable_key(prefix: str, index: int) -> str:
    """The sidecar listing (id, reason) of the samples shard `index` of a stage could not read."""
    layout.part_key(prefix, index)  # the same checks of prefix and index as the part's own key
    return f"{prefix}/failures-{index:05d}.json"


def report_key(model: str, version: str, name: str) -> str:
    """The key of file `name` (one path segment) of the report of `model@version`."""
    if not name or "/" in name:
        raise ConfigError(f"a report file is one name without '/', not {name!r}")
    return layout.check_key(f"{layout.report_prefix(model, version)}/{name}")


def diagnosers_root(model: str, version: str) -> str:
    """The folder that holds one sub-folder per diagnoser (`layout.diagnoser_prefix`)."""
    return layout.check_key(f"{layout.audit_prefix(model, version)}/diagnosers")
