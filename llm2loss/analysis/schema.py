"""The layout of metrics.json: its version, a description of every top-level key, strict JSON.

`METRICS_SCHEMA` is written into every metrics.json (`metrics["schema"]`), so a reader of a stored
audit can tell what each key means without this code; `SCHEMA_VERSION` is bumped when a key
changes meaning. `jsonable` (llm2loss.jsonable) turns numpy values into Python ones and NaN/inf into None, so the
file is strict JSON. The names of the diagnosers that speak for an audit are kept here too,
because `primary` and the version comparison both read them. Numpy only (no torch).
"""

from __future__ import annotations

from typing import Any

from llm2loss.jsonable import jsonable

__all__ = ["LOSS_OBJECTIVES", "METRICS_SCHEMA", "PRIMARY_FAMILIARITY", "PRIMARY_LOSS",
           "SCHEMA_VERSION", "TOP_K", "discovery_rows", "jsonable"]

SCHEMA_VERSION = 1
LOSS_OBJECTIVES = ("rank", "regress")
#: Which fitted diagnoser speaks for the audit, best first (the paper's ranker is the most valid).
PRIMARY_LOSS = ("rank-mlp", "rank-linear", "regress-mlp", "regress-linear")
PRIMARY_FAMILIARITY = ("familiarity-mlp", "familiarity-linear")
#: Rows kept in each ranked list (top failures, least familiar, phrases that rose or fell).
TOP_K = 10

METRICS_SCHEMA: dict[str, str] = {
    "schema_version": "version of this layout; bumped when a key changes meaning",
    "schema": "this description of every top-level key",
    "summary": "model, version, dataset, fingerprints, encoder, samples used/skipped, split sizes, "
    "stage times (filled by the pipeline; see llm2loss.report for the keys)",
    "data": "n_train, n_test, dim, modality, gap, held-out mean/median loss and error rate",
    "settings": "the AuditSettings of the audit",
    "diagnosers": "per fitted diagnoser: objective, arch, n_members, gap, text_readout (how phrases "
                  "are scored: heads or linear), epochs, fit seconds",
    "primary": "which diagnoser speaks for loss estimates and which for familiarity",
    "validity": "Table 2: per loss diagnoser, correlations of predicted and true held-out loss; "
    "members as mean/std (and median p), ensemble mean and median aggregation as r and p",
    "score_quantiles": "per loss diagnoser, per member, 101 quantiles of held-out scores (the "
    "percentile scale of phrase estimates and of compare_versions)",
    "familiarity": "Table 1 (auroc rows: in-domain phrases vs each out-of-domain vocabulary) and "
    "Figure 2 (probes: logit and sigmoid probability per phrase); available/reason when skipped",
    "estimates": "per in-domain phrase: primary loss diagnoser mean/std/quartiles of the score, "
    "percentile mean/std among held-out samples, P(above the held-out median), familiarity; "
    "measured: mean loss (bootstrap 90% low/high), error rate and loss percentile of the held-out "
    "samples nearest the phrase (n of them); examples: up to 5 of them (id, preview, loss)",
    "discovery": "insights.discover over in-domain phrases: highest_loss (highest mean "
    "score) and least familiar phrases, with the estimates' fields",
    "comparisons": "per phrase pair (configured or attribute): P(a worse than b, ties 1/2), "
    "quartiles of member score differences, member score and percentile differences (Figure 3); "
    "measured_diff/low/high and n_a/n_b: measured loss gap between the held-out samples that look "
    "more like a and those that look more like b; verdict (a worse | b worse | uncertain), reason, "
    "examples_a/examples_b (llm2loss.verdicts states the rule)",
    "attributes": "Tables 3-5: per attribute measured vs predicted disparity (signed, absolute), "
    "zero_shot_auroc (Table 5), measured_interval and significant (bootstrap 90%), the pair's "
    "verdict and reason; agreement per diagnoser and metric; validity: Kendall of 0-shot AUROC "
    "vs |measured disparity| (Table 4); track_record: significant, stated and right verdicts; "
    "skipped attributes with reasons",
    "phrases_used": "every in-domain phrase the audit estimated (for version comparisons)",
    "split": "{train, test} sample counts (set by the pipeline after analyse)",
}


def discovery_rows(metrics: dict[str, Any], kind: str) -> list[Any]:
    """metrics["discovery"][kind] ("highest_loss" or "least_familiar") as a list, [] when absent.

    Audits written before the key was named like `insights.Discovery` call the highest-loss
    phrases "top_failures"; those are read too. Anything not a list (a tampered file) reads as []."""
    found = metrics.get("discovery") if isinstance(metrics, dict) else None
    if not isinstance(found, dict):
        return []
    rows = found.get(kind)
    if rows is None and kind == "highest_loss":
        rows = found.get("top_failures")
    return rows if isinstance(rows, list) else []
