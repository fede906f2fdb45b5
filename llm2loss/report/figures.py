"""The report's figures, drawn with matplotlib's Agg canvas (no display, no pyplot state).

Each `*_figure(...)` returns PNG bytes, or None when the metrics hold nothing to draw; the
matching `*_caption(...)` says how to read it (a zoomed or symmetric-log axis is always said).
Phrases are user text: `label` and `wrap_label` keep matplotlib from reading `$...$` in them as
math; `wrap_label` breaks long phrases over two lines instead of cutting them short.
"""

from __future__ import annotations

import io
import math
import textwrap
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from llm2loss.analysis.schema import discovery_rows

MAX_LABEL = 48
MAX_BARS_PER_DOMAIN = 12
MAX_PAIRS = 15
MAX_ATTRIBUTES = 30
WRAP = 40
#: The failures axis starts at 0 unless every point lies above this percentile (plus a margin).
MIN_ZOOM = 30.0
#: An axis turns symmetric-log when its largest |value| exceeds this many times the median |value|.
OUTLIER_RATIO = 6.0
IN_COLOUR, OUT_COLOUR, DATA_COLOUR = "#2b6cb0", "#c05621", "#2f855a"
MUTED = "#a0aec0"


def label(text: str) -> str:
    """A phrase as a plain-text matplotlib label: `$` escaped, at most MAX_LABEL characters."""
    short = text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "…"
    return short.replace("\\", "\\\\").replace("$", r"\$")


def wrap_label(text: str, width: int = WRAP, lines: int = 2) -> str:
    """A phrase as a plain-text label over at most `lines` lines of `width` characters (the last
    one ends with … when the phrase is longer), `$` escaped."""
    parts = textwrap.wrap(" ".join(str(text).split()), width, break_long_words=True) or [""]
    if len(parts) > lines:
        parts = parts[:lines]
        parts[-1] = parts[-1][: width - 1] + "…"
    return "\n".join(p.replace("\\", "\\\\").replace("$", r"\$") for p in parts)


def symlog_threshold(values: list[float]) -> float | None:
    """The linear range of a symmetric-log axis when one value dwarfs the others, else None."""
    mags = sorted(abs(v) for v in values if v is not None and math.isfinite(v))
    nonzero = [m for m in mags if m > 0]
    if len(nonzero) < 3:
        return None
    median = float(np.median(nonzero))
    return median if nonzero[-1] > OUTLIER_RATIO * median else None


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
    fig = Figure(figsize=(11, 0.32 * len(chosen) + 1.6), layout="constrained")
    left, right = fig.subplots(1, 2, sharey=True)
    left.barh(y, [r["logit"] for r in chosen], xerr=[r["logit_std"] for r in chosen], color=colours)
    right.barh(y, [r["probability"] for r in chosen], xerr=[r["probability_std"] for r in chosen],
               color=colours)
    left.set_yticks(y, [wrap_label(r["phrase"], 60, 1) for r in chosen], fontsize=8)
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


def _failures_low(rows: list[dict[str, Any]]) -> float:
    """Where the failures axis starts: just below the lowest whisker or measured point (rounded
    down to 10) so that whiskers of phrases all near 100 stay visible; 0 when that would start
    below MIN_ZOOM (a zoom that small helps nobody)."""
    lows = [r["percentile"] - (r.get("percentile_std") or 0.0) for r in rows]
    lows += [r["measured"]["percentile"] for r in rows
             if (r.get("measured") or {}).get("percentile") is not None]
    low = math.floor((min(lows) - 5.0) / 10.0) * 10.0
    return 0.0 if low < MIN_ZOOM else float(min(low, 90.0))


def failures_caption(metrics: dict[str, Any]) -> str:
    """How to read failures.png, including where its axis starts."""
    rows = discovery_rows(metrics, "highest_loss")
    if not rows:
        return ""
    low = _failures_low(rows)
    zoom = f" The axis starts at percentile {low:.0f}, not 0, to show the spread." if low else ""
    return ("Dots: each phrase's estimated loss as a percentile among held-out samples (mean over "
            "members), whiskers ± one standard deviation across members; open diamonds: the "
            "measured loss percentile of the held-out samples nearest the phrase." + zoom)


def failures_figure(metrics: dict[str, Any]) -> bytes | None:
    """The top failure phrases' percentile among held-out samples, with the members' spread and
    the measured percentile of the samples nearest to each phrase."""
    rows = discovery_rows(metrics, "highest_loss")
    if not rows:
        return None
    rows = rows[::-1]
    y = np.arange(len(rows))
    height = 0.42 * len(rows) + 1.5
    fig = Figure(figsize=(9, height))
    ax = fig.subplots()
    ax.errorbar([r["percentile"] for r in rows], y, xerr=[r["percentile_std"] for r in rows],
                fmt="o", color=IN_COLOUR, ecolor=IN_COLOUR, elinewidth=2, capsize=5,
                markersize=7, label="estimated (± std over members)")
    measured = [(r["measured"]["percentile"], i) for i, r in enumerate(rows)
                if (r.get("measured") or {}).get("percentile") is not None]
    if measured:
        ax.scatter(*zip(*measured), marker="D", facecolors="none", edgecolors=DATA_COLOUR, s=45,
                   linewidths=1.5, label="measured on the nearest held-out samples", zorder=3)
    low = _failures_low(rows)
    if low < 50:
        ax.axvline(50, color="grey", ls=":")
    ax.set_yticks(y, [wrap_label(r["phrase"]) for r in rows], fontsize=8)
    ax.set_xlim(low, 100.5)
    ax.grid(axis="x", color="#e2e8f0")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.45 / (0.77 * height)), ncol=2, fontsize=8,
              frameon=False)
    start = f" (axis starts at {low:.0f})" if low else ""
    ax.set_xlabel(f"loss percentile among held-out samples{start}", labelpad=2)
    ax.set_title("Phrases estimated to fail most")
    return _png(fig)


def comparisons_figure(metrics: dict[str, Any]) -> bytes | None:
    """Figure 3: per phrase pair, the members' percentile differences as a box plot, with P."""
    rows = metrics.get("comparisons", {}).get("rows", [])
    if not rows:
        return None
    rows = sorted(rows, key=lambda r: -abs(r["percentile_quartiles"][2]))[:MAX_PAIRS][::-1]
    fig = Figure(figsize=(9, 0.62 * len(rows) + 1.6))
    ax = fig.subplots()
    ax.boxplot([r["percentile_differences"] for r in rows], orientation="horizontal", whis=(0, 100))
    ax.axvline(0, color="grey", ls=":")
    names = [f"{wrap_label(r['a'], 55, 1)}\nvs {wrap_label(r['b'], 45, 1)}  "
             f"(P(a worse) = {r['p_a_worse']:.2f})" for r in rows]
    ax.set_yticks(np.arange(1, len(rows) + 1), names, fontsize=8)
    ax.grid(axis="x", color="#e2e8f0")
    ax.set_xlabel("estimated loss of a minus b, percentile points of held-out samples "
                  "(one value per member)")
    ax.set_title("Estimated loss gap per phrase pair, in percentile points")
    return _png(fig)


def _attribute_points(metrics: dict[str, Any]) -> tuple[str | None, list[dict[str, Any]]]:
    """The primary diagnoser and the attribute rows it predicted, by measured disparity."""
    rows = (metrics.get("attributes", {}) or {}).get("rows", [])
    name = (metrics.get("primary") or {}).get("loss")
    rows = [r for r in rows if name in r["predicted"]]
    rows = sorted(rows, key=lambda r: -abs(r["measured"]["loss"]["signed"]))[:MAX_ATTRIBUTES]
    return name, sorted(rows, key=lambda r: r["measured"]["loss"]["signed"])


def _scales(rows: list[dict[str, Any]], name: str | None) -> tuple[float | None, float | None]:
    measured = [r["measured"]["loss"]["signed"] for r in rows]
    predicted = [r["predicted"][name]["signed"] for r in rows]
    return symlog_threshold(measured), symlog_threshold(predicted)


def attributes_caption(metrics: dict[str, Any]) -> str:
    """How to read attributes.png, including which axis is on a symmetric log scale."""
    name, rows = _attribute_points(metrics)
    if not rows:
        return ""
    text = ("One row per attribute. Left: measured loss disparity on held-out data (attr minus "
            "not attr), whiskers the bootstrap 90% interval, filled when significant. Right: the "
            f"disparity {name} predicts from the attribute's two phrases, filled when a verdict "
            "was stated.")
    for side, t in zip(("left", "right"), _scales(rows, name)):
        if t is not None:
            text += (f" The {side} axis is on a symmetric log scale (linear within ±{t:.2g}) "
                     "because one attribute dwarfs the others.")
    return text


def attributes_figure(metrics: dict[str, Any]) -> bytes | None:
    """Measured and predicted signed loss disparity per attribute (primary diagnoser), side by
    side with the attribute names as row labels (they never overlap)."""
    name, rows = _attribute_points(metrics)
    if not rows:
        return None
    y = np.arange(len(rows))
    fig = Figure(figsize=(11, 0.36 * len(rows) + 1.8), layout="constrained")
    left, right = fig.subplots(1, 2, sharey=True)
    for i, r in enumerate(rows):
        value = r["measured"]["loss"]["signed"]
        interval = r.get("measured_interval")
        colour = OUT_COLOUR if r.get("significant") else MUTED
        if interval and None not in interval:
            left.errorbar([value], [i], xerr=[[max(value - interval[0], 0)],
                                             [max(interval[1] - value, 0)]],
                          color=colour, capsize=3, elinewidth=1.5)
        left.scatter([value], [i], edgecolors=colour, s=36, zorder=3,
                     facecolors=colour if r.get("significant") else "none")
        stated = r.get("verdict") in ("a worse", "b worse")
        predicted = r["predicted"][name]["signed"]
        right.scatter([predicted], [i], s=36, zorder=3, edgecolors=IN_COLOUR,
                      facecolors=IN_COLOUR if stated else "none")
    for ax, t in zip((left, right), _scales(rows, name)):
        ax.axvline(0, color="grey", ls=":")
        ax.grid(axis="x", color="#e2e8f0")
        if t is not None:
            ax.set_xscale("symlog", linthresh=t)
    log = ["  (symmetric log scale)" if t is not None else "" for t in _scales(rows, name)]
    left.set_yticks(y, [wrap_label(r["attribute"], 30, 1) for r in rows], fontsize=8)
    left.set_xlabel("measured loss disparity, attr - not attr" + log[0])
    right.set_xlabel(f"predicted from phrases by {name}" + log[1])
    left.set_title("measured on held-out data")
    right.set_title("predicted from the phrases")
    fig.suptitle("Attribute disparities: measured and predicted")
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
    fig = Figure(figsize=(9, 0.42 * len(rows) + 1.5))
    ax = fig.subplots()
    ax.barh(y, [r["change"] for r in rows], xerr=[np.maximum(low, 0), np.maximum(high, 0)],
            capsize=3, ecolor="#1a202c",
            color=[OUT_COLOUR if r["change"] > 0 else DATA_COLOUR for r in rows])
    ax.axvline(0, color="grey", ls=":")
    ax.set_yticks(y, [wrap_label(r["phrase"]) for r in rows], fontsize=8)
    ax.set_xlabel("change of estimated loss, percentile points (median, quartiles over member pairs)")
    ax.set_title("Regression against the previous version")
    return _png(fig)
