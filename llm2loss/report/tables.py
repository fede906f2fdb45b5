"""The report's tables, built once from the metrics and rendered as HTML, Markdown or artifacts.

A `Table` holds raw cell values (str, int, float or None); the renderers format and escape them.
Numbers are formatted by `fmt` everywhere, so the report's figures are the metrics' figures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from llm2loss.analysis.schema import discovery_rows

Cell = str | int | float | None


@dataclass
class Table:
    """A titled table: `key` names it (HTML id, artifact name), `rows` hold raw values."""

    key: str
    title: str
    headers: list[str]
    rows: list[list[Cell]] = field(default_factory=list)
    note: str = ""

    def records(self) -> list[dict[str, Cell]]:
        """Rows as dicts header -> value (Prefect table artifacts; NaN already None)."""
        return [dict(zip(self.headers, row)) for row in self.rows]


def fmt(value: Any) -> str:
    """One number format for the whole report: 3 decimals, scientific below 0.001, n/a for None."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return "n/a"
        if value != 0 and abs(value) < 1e-3:
            return f"{value:.2e}"
        return f"{value:.3f}"
    return str(value)


def pm(mean: float | None, std: float | None) -> str:
    """`mean ± std` with the report's number format."""
    return f"{fmt(mean)} ± {fmt(std)}"


def summary_table(metrics: dict[str, Any]) -> Table:
    """Summary: model, data, encoder, samples, split and stage times."""
    s = metrics.get("summary", {}) or {}
    data = metrics.get("data", {}) or {}
    split = s.get("split") or metrics.get("split") or {"train": data.get("n_train"),
                                                        "test": data.get("n_test")}
    reasons = s.get("skipped_reasons") or {}
    reason_text = "; ".join(f"{reason}: {count}" for reason, count in reasons.items()) or "none"
    stages = s.get("stage_seconds") or {}
    stage_text = "; ".join(f"{stage} {fmt(float(sec))} s" for stage, sec in stages.items()) or "n/a"
    rows: list[list[Cell]] = [
        ["Model", s.get("model")], ["Version", s.get("version")],
        ["Dataset", s.get("dataset")], ["Dataset fingerprint", s.get("dataset_fingerprint")],
        ["Encoder", s.get("encoder") or s.get("text_encoder")],
        ["Encoder fingerprint", s.get("encoder_fingerprint")],
        ["Task", s.get("task")], ["Modality", s.get("modality") or data.get("modality")],
        ["Samples used", s.get("samples_used")], ["Samples skipped", s.get("samples_skipped")],
        ["Skip reasons", reason_text],
        ["Train samples", split.get("train")], ["Test samples", split.get("test")],
        ["Held-out mean loss", data.get("test_loss_mean")],
        ["Held-out error rate", data.get("test_error_rate")],
        ["Modality gap handling", data.get("gap")],
        ["Stage times", stage_text], ["Audited at", s.get("created_at")],
    ]
    return Table("summary", "Release, data, encoder and stage times", ["Field", "Value"], rows)


def validity_table(metrics: dict[str, Any]) -> Table:
    """Table 2: correlations of predicted and true held-out loss per diagnoser and aggregation."""
    headers = ["Diagnoser", "Aggregation", "Pearson r", "Pearson p", "Spearman r", "Spearman p",
               "Kendall r", "Kendall p"]
    rows: list[list[Cell]] = []
    for row in metrics.get("validity", []):
        m = row["members"]
        rows.append([row["diagnoser"], "members (mean ± std, median p)",
                     *[c for k in ("pearson", "spearman", "kendall")
                       for c in (pm(m[k]["mean"], m[k]["std"]), m[k]["p_median"])]])
        for agg in ("ensemble_mean", "ensemble_median"):
            e = row[agg]
            rows.append([row["diagnoser"], agg.replace("_", " "),
                         *[c for k in ("pearson", "spearman", "kendall")
                           for c in (e[k]["r"], e[k]["p"])]])
    return Table("validity", "Predicted against true loss of held-out samples", headers, rows,
                 "Correlation between each diagnoser's predicted loss and the true loss of "
                 "held-out samples; p-values test the null of no correlation.")


def familiarity_table(metrics: dict[str, Any]) -> Table:
    """Table 1: AUROC of in-domain phrases against each out-of-domain vocabulary."""
    fam = metrics.get("familiarity", {}) or {}
    rows: list[list[Cell]] = [[r["diagnoser"], r["out_of_domain"], r["n_in"], r["n_out"], r["auroc"]]
                              for r in fam.get("auroc", [])]
    return Table("familiarity", "In-domain against out-of-domain phrases (AUROC)",
                 ["Diagnoser", "Out-of-domain vocabulary", "In-domain phrases",
                  "Out-of-domain phrases", "AUROC"], rows,
                 fam.get("auroc_reason") or "1.0: every in-domain phrase is more familiar than "
                 "every out-of-domain one; 0.5: no separation.")


def probes_table(metrics: dict[str, Any]) -> Table:
    """Figure 2's numbers: per probe phrase the familiarity logit and probability."""
    fam = metrics.get("familiarity", {}) or {}
    rows: list[list[Cell]] = [[r["phrase"], r["domain"], r["source"], pm(r["logit"], r["logit_std"]),
                               pm(r["probability"], r["probability_std"])]
                              for r in fam.get("probes", [])]
    return Table("probes", "Familiarity of probe phrases",
                 ["Phrase", "Domain", "Source", "Logit (before sigmoid)",
                  "Probability (after sigmoid)"], rows)


def failures_table(metrics: dict[str, Any]) -> Table:
    """Discovery: in-domain phrases with the highest estimated loss."""
    rows: list[list[Cell]] = [[r["phrase"], r["source"], pm(r["percentile"], r["percentile_std"]),
                               r["p_above_median"], r["familiarity"]]
                              for r in discovery_rows(metrics, "highest_loss")]
    return Table("top-failures", "Phrases estimated to fail most",
                 ["Phrase", "Source", "Percentile among held-out samples (± std over members)",
                  "P(above median)", "Familiarity"], rows)


def least_familiar_table(metrics: dict[str, Any]) -> Table:
    """Discovery: the least familiar in-domain phrases."""
    rows: list[list[Cell]] = [[r["phrase"], r["source"], pm(r["familiarity"], r["familiarity_std"]),
                               r["percentile"]]
                              for r in discovery_rows(metrics, "least_familiar")]
    return Table("least-familiar", "Least familiar in-domain phrases",
                 ["Phrase", "Source", "Familiarity (± std)", "Loss percentile"], rows)


def _interval(low: Any, high: Any) -> str:
    return "n/a" if low is None or high is None else f"[{fmt(low)}, {fmt(high)}]"


def comparisons_table(metrics: dict[str, Any]) -> Table:
    """Figure 3's numbers: P(a worse than b), quartiles of the member differences, and the gap
    measured on the held-out samples each phrase describes, with the pair's verdict."""
    rows: list[list[Cell]] = []
    for r in metrics.get("comparisons", {}).get("rows", []):
        rows.append([r["a"], r["b"], r["source"], r.get("verdict"), r["p_a_worse"],
                     *r["quartiles"], r["percentile_quartiles"][2], r.get("measured_diff"),
                     _interval(r.get("measured_low"), r.get("measured_high")),
                     f"{fmt(r.get('n_a'))} vs {fmt(r.get('n_b'))}", r.get("reason")])
    return Table("comparisons", "Predicted and measured gap per phrase pair",
                 ["Phrase a", "Phrase b", "Source", "Verdict", "P(a worse than b)", "Min diff",
                  "Q1 diff", "Median diff", "Q3 diff", "Max diff", "Median percentile diff",
                  "Measured loss gap a - b", "Measured 90% interval", "Samples a vs b",
                  "Why uncertain"], rows,
                 "Differences are member score of a minus score of b; positive means a is "
                 "estimated to have the higher loss. The measured gap is the mean loss of the "
                 "held-out samples that look more like a minus those that look more like b.")


def attributes_table(metrics: dict[str, Any]) -> Table:
    """Tables 3 and 5: measured disparity per attribute, its interval, the encoder's 0-shot AUROC
    for the attribute's phrases, and the phrase verdict."""
    att = metrics.get("attributes", {}) or {}
    rows: list[list[Cell]] = []
    for r in att.get("rows", []):
        err = r["measured"].get("error") or {}
        interval = r.get("measured_interval") or [None, None]
        rows.append([r["attribute"], r["n_attr"], r["n_not"], r["measured"]["loss"]["signed"],
                     _interval(*interval), r["measured"]["loss"]["absolute"], err.get("signed"),
                     err.get("absolute"), r.get("significant"), r.get("zero_shot_auroc"),
                     r.get("verdict"), r.get("reason")])
    return Table("attributes", "Measured disparity per attribute",
                 ["Attribute", "n attr", "n not", "Measured loss (signed)",
                  "Measured loss 90% interval", "Measured loss (abs)", "Measured error (signed)",
                  "Measured error (abs)", "Significant", "0-shot AUROC", "Verdict",
                  "Why uncertain"], rows,
                 "Signed = metric(attr) - metric(not attr) on held-out data. 0-shot AUROC: how well "
                 "the encoder tells the attribute's samples apart from its two phrases (0.5 = not "
                 "at all).")


def attributes_predicted_table(metrics: dict[str, Any]) -> Table:
    """Table 3's predicted side: per diagnoser, the disparity predicted from the phrases."""
    att = metrics.get("attributes", {}) or {}
    rows_in = att.get("rows", [])
    names = sorted({n for r in rows_in for n in r["predicted"]})
    headers = ["Attribute"]
    headers += [h for n in names for h in (f"Predicted {n} (signed)", f"Predicted {n} (abs)",
                                           f"P(attr worse) {n}")]
    rows: list[list[Cell]] = []
    for r in rows_in:
        row: list[Cell] = [r["attribute"]]
        row += [r["predicted"][n][k] for n in names
                for k in ("signed", "absolute", "p_attr_worse")]
        rows.append(row)
    return Table("attributes-predicted", "Disparity predicted from the phrases, per diagnoser",
                 headers, rows, "Predicted = score of the 'attr' phrase minus score of the "
                 "'not attr' phrase; P = share of members that score the attribute higher.")


def attribute_notes(metrics: dict[str, Any]) -> list[str]:
    """The audit's track record on labelled attributes and Table 4 (validity of 0-shot AUROC)."""
    att = metrics.get("attributes", {}) or {}
    notes = []
    record = att.get("track_record")
    if record:
        notes.append(f"Track record: of {fmt(record.get('attributes'))} attributes, "
                     f"{fmt(record.get('significant'))} have a significant measured disparity; "
                     f"{fmt(record.get('stated'))} phrase verdicts were stated on them and "
                     f"{fmt(record.get('right'))} were right.")
    validity = att.get("validity") or {}
    kendall = validity.get("kendall") or {}
    if validity:
        notes.append(f"Table 4 of the paper: Kendall correlation of the 0-shot AUROC with the "
                     f"absolute measured disparity over {fmt(validity.get('n'))} attributes: "
                     f"{fmt(kendall.get('r'))} (p = {fmt(kendall.get('p'))}).")
    return notes


def agreement_table(metrics: dict[str, Any]) -> Table:
    """Agreement of measured and predicted disparities across attributes."""
    rows: list[list[Cell]] = []
    for r in (metrics.get("attributes", {}) or {}).get("agreement", []):
        cells: list[Cell] = [r["diagnoser"], r["metric"], r["n"]]
        for k in ("pearson", "spearman", "kendall"):
            cells += [r.get(k, {}).get("r"), r.get(k, {}).get("p")]
        cells.append(r.get("sign_accuracy"))
        rows.append(cells)
    return Table("agreement", "Agreement of measured and predicted disparities",
                 ["Diagnoser", "Metric", "Attributes", "Pearson r", "Pearson p", "Spearman r",
                  "Spearman p", "Kendall r", "Kendall p", "Sign accuracy"], rows)


def regression_tables(regression: dict[str, Any]) -> list[Table]:
    """Phrases that rose and fell, estimated attribute gaps, measured attribute changes."""
    headers = ["Phrase", "Previous percentile", "Current percentile", "Median change", "P(rose)",
               "Q1 change", "Q3 change"]
    tables = []
    for key, title in (("phrases_rose", "Phrases whose estimated loss rose most"),
                       ("phrases_fell", "Phrases whose estimated loss fell most")):
        rows: list[list[Cell]] = [[r["phrase"], r["previous"], r["current"], r["change"],
                                   r["p_rose"], r["quartiles"][1], r["quartiles"][3]]
                                  for r in regression.get(key, [])]
        tables.append(Table(key.replace("_", "-"), title, headers, rows))
    rows = [[r["attribute"], r["previous"], r["current"], r["change"], r["p_rose"],
             r["quartiles"][1], r["quartiles"][3]] for r in regression.get("attributes_estimated", [])]
    tables.append(Table("attributes-estimated", "Estimated attribute gaps (percentile points)",
                        ["Attribute", *headers[1:]], rows))
    rows = [[r["attribute"], r["metric"], r["previous"], r["current"], r["change"],
             r["absolute_change"]] for r in regression.get("attributes_measured", [])]
    tables.append(Table("attributes-measured", "Measured attribute disparities",
                        ["Attribute", "Metric", "Previous", "Current", "Change",
                         "Change of absolute disparity"], rows))
    return tables
