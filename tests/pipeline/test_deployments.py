"""The deployments are one table (flows/deployments.py): prefect.yaml says exactly what it says,
and `python -m flows.serve` serves exactly its rows."""

from __future__ import annotations

from pathlib import Path

import yaml

from flows.deployments import DEPLOYMENTS, WORK_POOL
from flows.events import RELEASE_REGISTERED

REPO = Path(__file__).resolve().parents[2]


def test_prefect_yaml_is_the_table() -> None:
    spelled = yaml.safe_load((REPO / "prefect.yaml").read_text(encoding="utf-8"))["deployments"]
    assert spelled == [d.as_yaml() for d in DEPLOYMENTS]
    assert {d["work_pool"]["name"] for d in spelled} == {WORK_POOL}


def test_serve_builds_every_row_of_the_table() -> None:
    from flows.serve import deployments

    served = {d.name: d for d in deployments(cron="*/5 * * * *")}
    assert list(served) == [d.name for d in DEPLOYMENTS]
    for spec in DEPLOYMENTS:
        built = served[spec.name]
        # a module-path entrypoint, as Prefect spells it: module.flow
        assert built.entrypoint == spec.entrypoint.replace(":", ".") and built.description == spec.description
        assert bool(built.schedules) == bool(spec.cron)
        assert len(built.triggers) == len(spec.triggers)
    trigger = served["audit-release"].triggers[0]
    assert trigger.expect == {RELEASE_REGISTERED} and trigger.parameters["model"] == "{{ event.payload.model }}"
    assert served["audit-new-releases"].schedules[0].schedule.cron == "*/5 * * * *"


def test_a_row_whose_yaml_differs_is_caught() -> None:
    """The comparison really looks at the fields: a changed description is a difference."""
    spelled = yaml.safe_load((REPO / "prefect.yaml").read_text(encoding="utf-8"))["deployments"]
    spelled[1]["description"] = "something else"
    assert spelled != [d.as_yaml() for d in DEPLOYMENTS]
