"""The events llm2loss emits and listens to, and the deployment trigger built from them."""

from __future__ import annotations

from prefect.events import emit_event
from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger

RELEASE_REGISTERED = "llm2loss.release.registered"
AUDIT_COMPLETED = "llm2loss.audit.completed"


def release_resource(model: str, version: str) -> dict[str, str]:
    """The Prefect resource that stands for one release."""
    return {
        "prefect.resource.id": f"llm2loss.release.{model}.{version}",
        "llm2loss.model": model,
        "llm2loss.version": version,
    }


def emit_release_registered(model: str, version: str) -> None:
    """Tell Prefect a release was registered; the `audit-release` deployment's trigger fires on it."""
    emit_event(event=RELEASE_REGISTERED, resource=release_resource(model, version),
               payload={"model": model, "version": version})


def release_registered_trigger() -> DeploymentEventTrigger:
    """Run `audit-release` with the model and version of each registered release."""
    return DeploymentEventTrigger(
        name="audit-on-release",
        expect={RELEASE_REGISTERED},
        match={"prefect.resource.id": "llm2loss.release.*"},
        parameters={
            "model": "{{ event.payload.model }}",
            "version": "{{ event.payload.version }}",
        },
    )
