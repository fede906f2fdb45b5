"""Serve the deployments of flows/deployments.py from one process (no work pool needed):
`python -m flows.serve`.

The same table is what prefect.yaml describes for a process work pool; this is the light way to
run them on a laptop or in tests against any Prefect server (PREFECT_API_URL).
"""

from __future__ import annotations

from prefect import serve
from prefect.deployments.runner import EntrypointType
from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger

from flows.deployments import DEPLOYMENTS, HOURLY


def deployments(cron: str = HOURLY) -> list:
    """The table's deployments as runner deployments (`cron` replaces each table schedule)."""
    built = []
    for spec in DEPLOYMENTS:
        built.append(spec.flow().to_deployment(
            name=spec.name, description=spec.description,
            triggers=[DeploymentEventTrigger(**t) for t in spec.triggers] or None,
            cron=cron if spec.cron else None,
            entrypoint_type=EntrypointType.MODULE_PATH,
        ))
    return built


if __name__ == "__main__":
    serve(*deployments())
