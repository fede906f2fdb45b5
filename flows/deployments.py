"""The one table of llm2loss's deployments; `flows/serve.py` serves it and prefect.yaml spells it.

prefect.yaml stays a file `prefect deploy --all` reads as it is (a person can read and edit it),
and tests/pipeline/test_deployments.py fails when it says anything this table does not (name,
entrypoint, description, schedule, trigger), so the two cannot drift apart. Entrypoints are
module paths (`flows.audit:...`) so Dask workers can import the flow's module too (a file
entrypoint loads it as a bare `audit` module that workers cannot unpickle).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from flows.events import RELEASE_REGISTERED_TRIGGER

WORK_POOL = "llm2loss"
HOURLY = "0 * * * *"


@dataclass(frozen=True)
class Deployment:
    """One deployment: a flow, and what runs it (an event trigger, a cron schedule, or a person)."""

    name: str
    entrypoint: str  # "module:flow", a module path
    description: str
    triggers: tuple[dict[str, Any], ...] = field(default=())
    cron: str | None = None

    def flow(self) -> Any:
        """The flow object the entrypoint names (imported now, not when the table is read)."""
        module, _, name = self.entrypoint.partition(":")
        return getattr(importlib.import_module(module), name)

    def as_yaml(self) -> dict[str, Any]:
        """This deployment as an entry of prefect.yaml's `deployments`."""
        entry: dict[str, Any] = {"name": self.name, "description": self.description,
                                 "entrypoint": self.entrypoint, "work_pool": {"name": WORK_POOL}}
        if self.triggers:
            entry["triggers"] = [dict(t) for t in self.triggers]
        if self.cron:
            entry["schedules"] = [{"cron": self.cron, "timezone": "UTC"}]
        return entry


DEPLOYMENTS: tuple[Deployment, ...] = (
    Deployment("audit-release", "flows.audit:audit_release",
               "Audit one model release; triggered when a release is registered.",
               triggers=(RELEASE_REGISTERED_TRIGGER,)),
    Deployment("audit-new-releases", "flows.audit:audit_new_releases",
               "Audit every registered release that has no completed audit yet.", cron=HOURLY),
    Deployment("query-audit", "flows.query:query_audit",
               "Ask a finished audit about phrases and phrase pairs, on demand."),
)
