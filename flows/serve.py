"""Serve the three deployments from one process (no work pool needed): `python -m flows.serve`.

The same deployments are described for a process work pool in prefect.yaml; this is the light
way to run them on a laptop or in tests against any Prefect server (PREFECT_API_URL).
"""

from __future__ import annotations

from prefect import serve
from prefect.deployments.runner import EntrypointType

from flows.audit import audit_new_releases, audit_release
from flows.events import release_registered_trigger
from flows.query import query_audit


def deployments(cron: str = "0 * * * *") -> list:
    """The audit-release (event-triggered), audit-new-releases (cron) and query-audit deployments."""
    # Module entrypoints: the flow runs as `flows.audit`, a name Dask workers can import too
    # (a file entrypoint loads it as a bare `audit` module that workers cannot unpickle).
    module = EntrypointType.MODULE_PATH
    return [
        audit_release.to_deployment(name="audit-release", triggers=[release_registered_trigger()],
                                    entrypoint_type=module),
        audit_new_releases.to_deployment(name="audit-new-releases", cron=cron, entrypoint_type=module),
        query_audit.to_deployment(name="query-audit", entrypoint_type=module),
    ]


if __name__ == "__main__":
    serve(*deployments())
