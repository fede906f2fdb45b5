"""The on-demand `query-audit` flow: phrases and phrase pairs asked of a finished audit."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from flows.artifacts import release_artifact_key
from flows.runtime import load_settings
from llm2loss.query import AuditQuery


@flow(name="query-audit", log_prints=True)
def query_audit(
    model: str,
    version: str,
    phrases: list[str] | None = None,
    pairs: list[tuple[str, str]] | None = None,
    settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Estimated loss and familiarity of each phrase, and P(a worse than b) for each pair."""
    cfg = load_settings(settings)
    q = AuditQuery(cfg.store, model, version)
    estimates = q.estimate(list(phrases)).to_dict(orient="records") if phrases else []
    comparisons = [q.compare(a, b) for a, b in (pairs or [])]
    if estimates:
        create_table_artifact(table=estimates, key=release_artifact_key(model, version, "query"),
                              description=f"Phrase estimates for {model}@{version}")
    for row in comparisons:
        get_run_logger().info(row["sentence"])
    return {"estimates": estimates, "comparisons": comparisons}
