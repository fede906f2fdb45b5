"""The report's figures, drawn with matplotlib's Agg canvas (no display, no pyplot state).

Each `*_figure(...)` returns PNG bytes, or None when the metrics hold nothing to draw. Phrases are
user text: `label` keeps matplotlib from reading `$...$` in them as math and shortens long ones.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from matplotlib.figure import Figure

MAX_LABEL = 48
MAX_BARS_PER_DOMAIN = 12
MAX_PAIRS = 15
IN_COLOUR, OUT_COLOUR, DATA_COLOUR = "#2b6cb0", "#c05621", "#2f855a"


def label(text: str) -> str:
    """A phrase as a plain-text matplotlib label: `$` escaped, at most MAX_LABEL characters."""
    short = text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "…"
    return short.replace("\\", "\\\\").replace("$", r"\$")


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue()


def _spread(rows: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """At most n rows, evenly spread over the list (keeps the ends)."""
    if len(rows) <= n:
        return rows
    return [rows[i] for i in np.linspace(0, len(rows) - 1, n).round().astype(int)]


def familiarity_figure(metrics: dict[str, Any]) -> bytes | None:
    """Figure 2: probe phrases' familiarity before (logit) and after (probability) the sigmoid."""
    fam = metrics.get("familiarity", {}) or {}
    probes = fam.get("probes", [])
    if not probes:
        return None
    chosen = []
    for domain in ("in-domain", "out-of-domain"):
        rows = sorted((r for r in probes if r["domain"] == domain), key=lambda r: r["logit"])
        chosen += _spread(rows, MAX_BARS_PER_DOMAIN)
    y = np.arange(len(chosen))
    colours = [IN_COLOUR if r["domain"] == "in-domain" else OUT_COLOUR for r in chosen]
    fig = Figure(figsize=(11, 0.32 * len(chosen) + 1.6))
    left, right = fig.subplots(1, 2, sharey=True)
    left.barh(y, [r["logit"] for r in chosen], xerr=[r["logit_std"] for r in chosen], color=colours)
    right.barh(y, [r["probability"] for r in chosen], xerr=[r["probability_std"] for r in chosen],
               color=colours)
    left.set_yticks(y, [label(r["phrase"]) for r in chosen], fontsize=8)
    left.set_title("before sigmoid (logit)")
    right.set_title("after sigmoid (probability)")
    right.set_xlim(0, 1)
    data = fam.get("data")
    if data:
        left.axvline(data["logit"], color=DATA_COLOUR, ls="--", label="held-out samples (mean)")
        right.axvline(data["probability"], color=DATA_COLOUR, ls="--")
        left.legend(loc="lower right", fontsize=8)
    fig.suptitle("Familiarity of probe phrases (blue: in-domain, orange: out-of-domain)")
    return _png(fig)


def failures_figure(metrics: dict[str, Any]) -> bytes | None:
    """The top failure phrases' percentile among held-out samples, with the members' spread."""
    rows = metrics.get("discovery", {}).get("top_failures", [])
    if not rows:
        return None
    rows = rows[::-1]
    y = np.arange(len(rows))
    fig = Figure(figsize=(9, 0.35 * len(rows) + 1.4))
    ax = fig.subplots()
    ax.barh(y, [r["percentile"] for r in rows], xerr=[r["percentile_std"] for r in rows],
            color=IN_COLOUR)
    ax.axvline(50, color="grey", ls=":")
    ax.set_yticks(y, [label(r["phrase"]) for r in rows], fontsize=8)
    ax.set_xlim(0, 100)
    ax.set_xlabel("estimated loss: percentile among held-out samples (± std over members)")
    ax.set_title("Phrases estimated to fail most")
    return _png(fig)


def comparisons_figure(metrics: dict[str, Any]) -> bytes | None:
    """Figure 3: per phrase pair, the members' percentile differences as a box plot, with P."""
    rows = metrics.get("comparisons", {}).get("rows", [])
    if not rows:
        return None
    rows = sorted(rows, key=lambda r: -abs(r["percentile_quartiles"][2]))[:MAX_PAIRS][::-1]
    fig = Figure(figsize=(10, 0.45 * len(rows) + 1.6))
    ax = fig.subplots()
    ax.boxplot([r["percentile_differences"] for r in rows], orientation="horizontal", whis=(0, 100))
    ax.axvline(0, color="grey", ls=":")
    names = [f"{label(r['a'])}  vs  {label(r['b'])}  (P={r['p_a_worse']:.2f})" for r in rows]
    ax.set_yticks(np.arange(1, len(rows) + 1), names, fontsize=8)
    ax.set_xlabel("estimated loss of a minus b, percentile points (one value per member)")
    ax.set_title("Phrase comparisons: P(a worse than b)")
    return _png(fig)


def attributes_figure(metrics: dict[str, Any]) -> bytes | None:
    """Measured against predicted signed loss disparity per attribute (primary diagnoser)."""
    rows = (metrics.get("attributes", {}) or {}).get("rows", [])
    name = (metrics.get("primary") or {}).get("loss")
    points = [(r["measured"]["loss"]["signed"], r["predicted"][name]["signed"], r["attribute"])
              for r in rows if name in r["predicted"]]
    if not points:
        return None
    fig = Figure(figsize=(7, 6))
    ax = fig.subplots()
    xs, ys, names = zip(*points)
    ax.scatter(xs, ys, color=IN_COLOUR)
    for x, y, text in points:
        ax.annotate(label(text), (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.axhline(0, color="grey", ls=":")
    ax.axvline(0, color="grey", ls=":")
    ax.set_xlabel("measured loss disparity on held-out data (attr - not attr)")
    ax.set_ylabel(f"predicted from phrases by {name}")
    ax.set_title("Attribute disparities: measured vs predicted")
    return _png(fig)


def regression_figure(regression: dict[str, Any]) -> bytes | None:
    """Median percentile change (with quartiles) of the phrases that rose and fell most."""
    rows = regression.get("phrases_rose", [])[:8] + regression.get("phrases_fell", [])[:8]
    if not rows:
        return None
    rows = sorted(rows, key=lambda r: r["change"])
    y = np.arange(len(rows))
    low = [r["change"] - r["quartiles"][1] for r in rows]
    high = [r["quartiles"][3] - r["change"] for r in rows]
    fig = Figure(figsize=(9, 0.35 * len(rows) + 1.4))
    ax = fig.subplots()
    ax.barh(y, [r["change"] for r in rows], xerr=[np.maximum(low, 0), np.maximum(high, 0)],
            color=[OUT_COLOUR if r["change"] > 0 else DATA_COLOUR for r in rows])
    ax.axvline(0, color="grey", ls=":")
    ax.set_yticks(y, [label(r["phrase"]) for r in rows], fontsize=8)
    ax.set_xlabel("change of estimated loss, percentile points (median, quartiles over member pairs)")
    ax.set_title("Regression against the previous version")
    return _png(fig)
