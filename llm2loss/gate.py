"""The release gate: may a release ship, given its finished audit?

A release fails the gate when its audit measured a significant regression against the previous
version (the regression report's measured `reasons`, one per line, after the error-rate line when
there is one), or when its held-out error rate rose by more than `max_error_rate_rise` (absolute,
0.02 = two percentage points) over the previous version's. Only measured changes fail a release:
a phrase whose *estimated* loss rose is a prediction of the diagnosers (the report's `predicted`,
`llm2loss.regression`), so it is named in a note and never fails the gate, also when an older
report listed it among its reasons. A release with no earlier version audited on the same
dataset and encoder has nothing to regress from and passes, with a note.

Pure functions over the audit's manifest and regression report (plain dicts): the `llm2loss gate`
command reads them from the store, and a team's own pipeline can call `evaluate_gate` directly.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from llm2loss.errors import ConfigError
from llm2loss.regression import is_regression, measured_reasons, predictions

DEFAULT_MAX_ERROR_RATE_RISE = 0.02


@dataclass(frozen=True)
class GateResult:
    """The gate's verdict on one release: `passed`, and when not, one sentence per reason."""

    ref: str
    passed: bool
    reasons: list[str]
    previous: str | None
    significant_regression: bool
    error_rate_previous: float | None
    error_rate_current: float | None
    max_error_rate_rise: float
    notes: list[str] = field(default_factory=list)
    predicted: list[str] = field(default_factory=list)  # estimated rises: predictions, not reasons

    @property
    def error_rate_rise(self) -> float | None:
        """Current minus previous held-out error rate, when both are known."""
        if self.error_rate_previous is None or self.error_rate_current is None:
            return None
        return self.error_rate_current - self.error_rate_previous

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (the `--json` output of `llm2loss gate`)."""
        return {**asdict(self), "error_rate_rise": self.error_rate_rise}


def check_threshold(max_error_rate_rise: float) -> float:
    """The threshold must be a finite number >= 0 (an absolute rise of the error rate)."""
    value = float(max_error_rate_rise)
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"the allowed error-rate rise must be a number >= 0, got {max_error_rate_rise!r}: "
                          "give an absolute rise such as 0.02 (two percentage points)")
    return value


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def evaluate_gate(manifest: dict[str, Any], regression: dict[str, Any] | None, *,
                  max_error_rate_rise: float = DEFAULT_MAX_ERROR_RATE_RISE) -> GateResult:
    """The gate's verdict from a finished audit's manifest and its regression report (or None)."""
    threshold = check_threshold(max_error_rate_rise)
    ref = f"{manifest.get('model')}@{manifest.get('version')}"
    if regression is None:
        note = ("no earlier version of this model was audited on the same dataset and encoder, so "
                "there is nothing to regress from")
        return GateResult(ref=ref, passed=True, reasons=[], previous=None,
                          significant_regression=bool(manifest.get("significant_regression")),
                          error_rate_previous=None, error_rate_current=None,
                          max_error_rate_rise=threshold, notes=[note])
    previous = regression.get("previous") or {}
    previous_ref = f"{previous.get('model')}@{previous.get('version')}" if previous else None
    flagged = is_regression(regression)  # measured changes only (module doc)
    reasons = measured_reasons(regression) if flagged else []
    if flagged and not reasons:
        reasons = [f"the audit flagged a significant regression against {previous_ref} "
                   "(see regression.json in the report folder)"]
    errors = (regression.get("overall") or {}).get("test_error_rate") or {}
    before, after = _number(errors.get("previous")), _number(errors.get("current"))
    notes = []
    predicted = predictions(regression)
    if predicted:
        notes.append(f"{_predicted_count(len(predicted))} against {previous_ref}, not measured, so "
                     "not a reason to fail: " + "; ".join(predicted))
    if before is None or after is None:
        notes.append("the held-out error rate is not known for both versions (a regression "
                     "model?), so only the regression report was checked")
    elif after - before > threshold:  # the plainest change of all: first
        reasons.insert(0, f"held-out error rate rose from {before:.3f} to {after:.3f} ({after - before:+.3f}, "
                       f"more than the allowed {threshold:+.3f}) against {previous_ref}")
    return GateResult(ref=ref, passed=not reasons, reasons=reasons, previous=previous_ref,
                      significant_regression=flagged, error_rate_previous=before,
                      error_rate_current=after, max_error_rate_rise=threshold, notes=notes,
                      predicted=predicted)


def _predicted_count(n: int) -> str:
    return f"{n} estimated rise{'s are predictions' if n != 1 else ' is a prediction'}"


def gate_lines(result: GateResult) -> list[str]:
    """What `llm2loss gate` prints: one line per reason when it fails, one summary line when not."""
    if not result.passed:
        return [f"FAIL {result.ref}: {reason}" for reason in result.reasons]
    if result.previous is None:
        return [f"PASS {result.ref}: {result.notes[0]}"]
    rise = result.error_rate_rise
    errors = ("" if rise is None else
              f"; held-out error rate {result.error_rate_previous:.3f} -> {result.error_rate_current:.3f} "
              f"({rise:+.3f}, allowed {result.max_error_rate_rise:+.3f})")
    predicted = (f"; {_predicted_count(len(result.predicted))}, not measured (regression.json "
                 "'predicted')" if result.predicted else "")
    return [f"PASS {result.ref}: no significant regression against {result.previous}{errors}"
            f"{predicted}"]
