"""Serve the three deployments from one process (no work pool needed): `python -m flows.serve`.

The same deployments are described for a process work pool in prefect.yaml; this is the light
way to run them on a laptop or in tests against any Prefect server (PREFECT_API_URL).
"""

from __future__ import annotations

from prefect import serve

from flows.audit import audit_new_releases, audit_release
from flows.events import release_registered_trigger
from flows.query import query_audit


def deployments(cron: str = "0 * * * *") -> list:
    """The audit-release (event-triggered), audit-new-releases (cron) and query-audit deployments."""
    return [
        audit_release.to_deployment(name="audit-release", triggers=[release_registered_trigger()]),
        audit_new_releases.to_deployment(name="audit-new-releases", cron=cron),
        query_audit.to_deployment(name="query-audit"),
    ]


if __name__ == "__main__":
    serve(*deployments())
