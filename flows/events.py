"""The events llm2loss emits and listens to, and the triggers built from them.

- `llm2loss.release.registered`: `llm2loss register` (payload: model, version); the
  `audit-release` deployment runs on it.
- `llm2loss.audit.completed`: every audit that finishes (payload: model, version, report,
  significant_regression, previous, error rates).
- `llm2loss.audit.regressed`: an audit whose regression report against the previous version is
  significant (same payload, plus `reasons`, one sentence each). Hang notifications or a release
  block on it: `regression_trigger()` is the automation trigger (see the README).

Every event's resource is the release (`llm2loss.release.<model>.<version>`).
"""

from __future__ import annotations

from typing import Any

from prefect.events import emit_event
from prefect.events.schemas.automations import EventTrigger, Posture
from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger

RELEASE_REGISTERED = "llm2loss.release.registered"
AUDIT_COMPLETED = "llm2loss.audit.completed"
AUDIT_REGRESSED = "llm2loss.audit.regressed"


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


#: The trigger of the `audit-release` deployment (flows/deployments.py) as prefect.yaml spells it.
RELEASE_REGISTERED_TRIGGER: dict[str, Any] = {
    "name": "audit-on-release",
    "type": "event",
    "enabled": True,
    "match": {"prefect.resource.id": "llm2loss.release.*"},
    "expect": [RELEASE_REGISTERED],
    "parameters": {
        "model": "{{ event.payload.model }}",
        "version": "{{ event.payload.version }}",
    },
}


def release_registered_trigger() -> DeploymentEventTrigger:
    """Run `audit-release` with the model and version of each registered release."""
    return DeploymentEventTrigger(**RELEASE_REGISTERED_TRIGGER)


def audit_events(model: str, version: str, report_uri: str,
                 regression: dict[str, Any] | None) -> list[tuple[str, dict[str, Any]]]:
    """The (event name, payload) pairs a finished audit emits: completed, and regressed if so."""
    errors = ((regression or {}).get("overall") or {}).get("test_error_rate") or {}
    previous = (regression or {}).get("previous") or {}
    flag = bool(regression and regression.get("significant_regression"))
    payload: dict[str, Any] = {
        "model": model, "version": version, "report": report_uri, "significant_regression": flag,
        "previous_version": previous.get("version"),
        "error_rate_previous": errors.get("previous"), "error_rate_current": errors.get("current"),
    }
    events = [(AUDIT_COMPLETED, payload)]
    if flag:
        events.append((AUDIT_REGRESSED, {**payload, "reasons": list(regression.get("reasons") or [])}))
    return events


def emit_audit_events(model: str, version: str, report_uri: str,
                      regression: dict[str, Any] | None) -> list[str]:
    """Emit `audit_events` to the Prefect API (through Prefect's event worker); their names."""
    names = []
    for name, payload in audit_events(model, version, report_uri, regression):
        emit_event(event=name, resource=release_resource(model, version), payload=payload)
        names.append(name)
    return names


def regression_trigger(model: str = "*") -> EventTrigger:
    """An automation trigger that fires once per `llm2loss.audit.regressed` of `model` (or any)."""
    return EventTrigger(
        expect={AUDIT_REGRESSED},
        match={"prefect.resource.id": f"llm2loss.release.{model}.*" if model != "*" else "llm2loss.release.*"},
        for_each={"prefect.resource.id"},  # one alert per release, not one for all of them
        posture=Posture.Reactive,
        threshold=1,
    )
