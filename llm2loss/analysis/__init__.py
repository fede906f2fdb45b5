"""The analysis of one audit, split by the paper's tables: fit the diagnosers, measure them,
question them with phrases.

- `run`: `analyse(...)`, the pure heart of an audit, and `AnalysisResult`.
- `schema`: the layout of metrics.json (`METRICS_SCHEMA`, `SCHEMA_VERSION`) and `jsonable`.
- `validity` (Table 2): correlations of predicted and true held-out loss per loss diagnoser.
- `familiarity` (Table 1, Figure 2): in-domain vs out-of-domain AUROC, probe logits.
- `attributes` (Tables 3-5): measured vs predicted disparity per labelled attribute.
- `estimates`: phrase estimates, discovery and phrase-pair comparisons (Figure 3).
- `grounded`: what the held-out samples behind each finding measured (Tables 4-5, verdicts).
- `scale`: the percentile scale on which estimates (and versions, `llm2loss.regression`) compare.
- `phrases`: the audit's phrases, their sources and one encoding of all.

The names below are imported lazily, so the torch-free rooms (`schema`, `scale`) can be used
(by `llm2loss.regression`, the report, the gate) without importing torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llm2loss.analysis.run import AnalysisResult, analyse, gap_for
    from llm2loss.analysis.scale import percentiles
    from llm2loss.analysis.schema import METRICS_SCHEMA, SCHEMA_VERSION, jsonable

__all__ = ["AnalysisResult", "METRICS_SCHEMA", "SCHEMA_VERSION", "analyse", "gap_for", "jsonable",
           "percentiles"]

_HOME = {"AnalysisResult": "run", "analyse": "run", "gap_for": "run", "percentiles": "scale",
         "METRICS_SCHEMA": "schema", "SCHEMA_VERSION": "schema", "jsonable": "schema"}


def __getattr__(name: str) -> Any:  # lazy: importing the torch-free rooms does not import torch
    if name in _HOME:
        return getattr(import_module(f"llm2loss.analysis.{_HOME[name]}"), name)
    raise AttributeError(f"module 'llm2loss.analysis' has no attribute {name!r}")
