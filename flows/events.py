"""The events llm2loss emits and listens to, and the triggers built from them.

- `llm2loss.release.registered`: `llm2loss register` sends it with `emit_release_registered`
  (payload: model, version); the `audit-release` deployment runs on it.
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


def emit_release_registered(model: str, version: str) -> str | None:
    """Send `llm2loss.release.registered` to the Prefect API now; None, or why it was not sent.

    The `audit-release` deployment's trigger fires on it (`llm2loss register` sends it). Sent
    synchronously, not through Prefect's background event worker, so a failure is known here.
    """
    import asyncio
    import logging

    from prefect.events import Event
    from prefect.events.clients import get_events_client
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        return (f"no Prefect API is configured (PREFECT_API_URL), so no event was emitted; the release "
                f"is registered: audit it with `llm2loss audit {model}@{version}`")
    event = Event(event=RELEASE_REGISTERED, resource=release_resource(model, version),
                  payload={"model": model, "version": version})

    async def send() -> None:
        async with get_events_client(reconnection_attempts=2) as client:
            await client.emit(event)

    quiet = logging.getLogger("prefect.events.clients")
    was_disabled, quiet.disabled = quiet.disabled, True  # its own warning would be a second line
    try:
        asyncio.run(send())
    except Exception as exc:  # noqa: BLE001 - any failure to reach the API is reported the same way
        return (f"could not emit {RELEASE_REGISTERED} to the Prefect API at {PREFECT_API_URL.value()} "
                f"({type(exc).__name__}: {exc}); the release is registered: audit it with "
                f"`llm2loss audit {model}@{version}`")
    finally:
        quiet.disabled = was_disabled
    return None


#: The trigger of the `audit-release` deployment (flows/deployments.py), as prefect.yaml spells it
#: and flows/serve.py builds it (a DeploymentEventTrigger).
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
