"""The Prefect artifacts of an audit, keyed per model AND version.

Keys look like `llm2loss-spam-filter-v2-summary`: Prefect allows lowercase letters, digits and
dashes only, so every other character becomes a dash. Each version gets its own keys, so the
Artifacts page lists every audited version (not only the latest) and each key's history is the
reruns of that version's audit. The report artifact is markdown: the link to the HTML report and,
beside it, the headline findings (and the regression's reasons), numbered.
"""

from __future__ import annotations

from typing import Any

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from llm2loss.config import ReleaseSpec

MAX_KEY = 100


def artifact_key(*parts: str) -> str:
    """A Prefect artifact key from `parts`: lowercase letters, digits and dashes only."""
    raw = "-".join(parts).lower()
    key = "".join(c if ("a" <= c <= "z" or "0" <= c <= "9") else "-" for c in raw)
    while "--" in key:
        key = key.replace("--", "-")
    return key.strip("-")[:MAX_KEY].rstrip("-")


def release_artifact_key(model: str, version: str, name: str) -> str:
    """The key of artifact `name` of the audit of `model@version`."""
    return artifact_key("llm2loss", model, version, name)


def _md_text(text: str) -> str:
    """Plain text safe in markdown: markup characters escaped, one line."""
    out = " ".join(str(text).split())
    for char in "\\`*_[]<>#|":
        out = out.replace(char, "\\" + char)
    return out


def report_markdown(ref: str, report_uri: str, findings: list[Any],
                    regression_reasons: list[str] | None = None) -> str:
    """The report artifact: a link to the HTML report with the headline findings beside it."""
    lines = [f"## [Report of {_md_text(ref)}]({report_uri.replace(' ', '%20')})", ""]
    if findings:
        lines += ["**Headline findings**", ""]
        lines += [f"{i}. {_md_text(str(f))}" for i, f in enumerate(findings, start=1)]
    if regression_reasons:
        lines += ["", "**Significant regression against the previous version**", ""]
        lines += [f"{i}. {_md_text(r)}" for i, r in enumerate(regression_reasons, start=1)]
    return "\n".join(lines) + "\n"


def publish_audit_artifacts(release: ReleaseSpec, metrics: dict[str, Any], report_uri: str,
                            regression: dict[str, Any] | None) -> list[str]:
    """Summary, tables, the report (link + findings) and the regression; returns their keys."""
    from llm2loss.report import headline_findings, prefect_artifact_payloads

    payloads = prefect_artifact_payloads(metrics, report_uri, regression)
    keys = []

    def key(name: str) -> str:
        keys.append(release_artifact_key(release.model, release.version, name))
        return keys[-1]

    create_markdown_artifact(markdown=payloads["markdown"], key=key("summary"),
                             description=f"Audit summary of {release.ref}")
    for name, rows in payloads.get("tables", {}).items():
        if rows:
            create_table_artifact(table=rows, key=key(name), description=f"{name} of {release.ref}")
    reasons = list((regression or {}).get("reasons") or []) if (regression or {}).get("significant_regression") else []
    create_markdown_artifact(
        markdown=report_markdown(release.ref, payloads.get("link", report_uri), headline_findings(metrics), reasons),
        key=key("report"), description=f"Report of {release.ref}: link and headline findings")
    if regression is not None and payloads.get("regression_markdown"):
        create_markdown_artifact(markdown=payloads["regression_markdown"], key=key("regression"),
                                 description=f"Regression of {release.ref} against the previous version")
    return keys
