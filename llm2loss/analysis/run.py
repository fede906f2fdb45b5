"""One audit's analysis: fit every configured diagnoser, then measure and question it.

`analyse(...)` is the pure heart of an audit. Given the train/test embeddings and per-sample
losses of one release, a text encoder, the audit settings, the vocabularies and the attribute
phrase pairs, it fits every configured diagnoser (objective x arch, `n_members` each) on the train
split and returns an `AnalysisResult` whose `metrics` is the JSON-able content of `metrics.json`
(`schema.METRICS_SCHEMA` describes every key). Each of the paper's tables is computed in its own
module: `validity` (Table 2), `familiarity` (Table 1, Figure 2), `attributes` (Tables 3-5),
`estimates` (estimates, discovery, Figure 3), all grounded in the held-out samples (`grounded`).

Modality gap: image data is queried with text, so `modality="image"` fits with gap="center" (the
phrase embeddings of the audit are the text reference); text data uses gap="none".
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from llm2loss.analysis import grounded
from llm2loss.analysis.attributes import attribute_metrics
from llm2loss.analysis.estimates import (attach_verdicts, comparison_rows, discovery,
                                         estimate_rows, separations)
from llm2loss.analysis.familiarity import familiarity_metrics
from llm2loss.analysis.phrases import collect_phrases, phrase_pairs
from llm2loss.analysis.scale import QUANTILE_GRID
from llm2loss.analysis.schema import (LOSS_OBJECTIVES, METRICS_SCHEMA, PRIMARY_FAMILIARITY,
                                      PRIMARY_LOSS, SCHEMA_VERSION, TOP_K, jsonable)
from llm2loss.analysis.validity import validity_row
from llm2loss.config import AuditSettings
from llm2loss.diagnoser import LossDiagnoser
from llm2loss.errors import DataError

__all__ = ["AnalysisResult", "MODALITIES", "analyse", "gap_for"]

#: What the audited data is (the encoders' word): text, or images queried with text.
MODALITIES = ("text", "image")


@dataclass
class AnalysisResult:
    """The fitted diagnosers by name ("rank-mlp", ...) and the JSON-able metrics of one audit."""

    diagnosers: dict[str, LossDiagnoser]
    metrics: dict[str, Any]


def gap_for(modality: str) -> Literal["none", "center"]:
    """The diagnosers' gap option for data of `modality`: text queries of image data are centred."""
    if modality not in MODALITIES:
        raise ValueError(f"unknown modality {modality!r}: choose one of {', '.join(MODALITIES)}")
    return "none" if modality == "text" else "center"


def _first(names: tuple[str, ...], available: dict[str, Any]) -> str | None:
    return next((name for name in names if name in available), None)


def _check_inputs(X_test: np.ndarray, loss_test: np.ndarray, correct_test: Any,
                  attributes_test: pd.DataFrame | None) -> None:
    """Raise DataError when the held-out arrays do not line up or are empty."""
    n = len(X_test)
    if n < 3:
        raise DataError(f"the test split has {n} samples but the analysis needs at least 3; "
                        "use more samples or a larger audit.test_fraction")
    if len(loss_test) != n:
        raise DataError(f"loss_test has {len(loss_test)} values but X_test has {n} rows; pass one "
                        "loss per held-out sample, in the same order")
    if correct_test is not None and len(correct_test) != n:
        raise DataError(f"correct_test has {len(correct_test)} values but X_test has {n} rows; "
                        "pass one correctness flag per held-out sample, or None")
    if attributes_test is not None and len(attributes_test.columns) and len(attributes_test) != n:
        raise DataError(f"attributes_test has {len(attributes_test)} rows but X_test has {n}; "
                        "pass one attribute row per held-out sample, in the same order")


def _fit_all(X_train: np.ndarray, loss_train: np.ndarray, settings: AuditSettings, gap: str,
             text_reference: np.ndarray | None) -> tuple[dict[str, LossDiagnoser], dict[str, Any]]:
    """Fit every configured objective x arch; return them and their fit records."""
    spec = settings.diagnosers
    diagnosers: dict[str, LossDiagnoser] = {}
    records: dict[str, Any] = {}
    for objective in spec.objectives:
        for arch in spec.archs:
            name = f"{objective}-{arch}"
            diagnoser = LossDiagnoser(objective=objective, arch=arch, n_members=spec.n_members,
                                      random_state=spec.random_state, gap=gap,
                                      max_epochs=spec.max_epochs)
            started = time.perf_counter()
            loss = None if objective == "familiarity" else loss_train
            diagnoser.fit(X_train, loss, text_reference=text_reference)
            records[name] = {"objective": objective, "arch": arch, "n_members": spec.n_members,
                             "gap": gap, "text_readout": diagnoser.text_readout_,
                             "epochs": diagnoser.n_epochs_,
                             "fit_seconds": time.perf_counter() - started}
            diagnosers[name] = diagnoser
    return diagnosers, records


def _data_summary(X_train: np.ndarray, X_test: np.ndarray, loss_test: np.ndarray,
                  correct_test: np.ndarray | None, modality: str, gap: str) -> dict[str, Any]:
    return {"n_train": len(X_train), "n_test": len(X_test), "dim": int(X_test.shape[1]),
            "modality": modality, "gap": gap,
            "test_loss_mean": float(loss_test.mean()), "test_loss_median": float(np.median(loss_test)),
            "test_error_rate": None if correct_test is None else float(1.0 - correct_test.mean())}


def analyse(*, X_train: Any, loss_train: Any, X_test: Any, loss_test: Any, correct_test: Any,
            attributes_test: pd.DataFrame | None, text_encoder: Any, settings: AuditSettings,
            vocabularies: dict[str, list[str]], attribute_phrases: dict[str, tuple[str, str]],
            modality: str = "text", top_k: int = TOP_K, ids_test: Any = None,
            previews_test: Any = None) -> AnalysisResult:
    """Fit every configured diagnoser on the train split and measure/question them (module doc).

    `correct_test` (bool per held-out sample) may be None (regression models); `attributes_test`
    holds one row per held-out sample (bool, 0/1 or -1/1 columns) and may be empty or None.
    `modality` is the audited data's ("text" | "image"); it chooses the modality-gap handling.
    `ids_test` / `previews_test` (optional, one per held-out sample) name the example samples
    shown behind each finding (`llm2loss.analysis.grounded`).
    """
    gap = gap_for(modality)
    X_test = np.asarray(X_test, dtype=np.float32)
    loss_test = np.asarray(loss_test, dtype=np.float64)
    correct = None if correct_test is None else np.asarray(correct_test, dtype=np.float64)
    _check_inputs(X_test, loss_test, correct, attributes_test)
    phrases = collect_phrases(settings, vocabularies, attribute_phrases, text_encoder)
    text_reference = np.stack(list(phrases.embeddings.values())) if phrases.embeddings else None
    diagnosers, records = _fit_all(np.asarray(X_train, dtype=np.float32), loss_train, settings,
                                   gap, text_reference)
    loss_diagnosers = {n: d for n, d in diagnosers.items() if d.objective in LOSS_OBJECTIVES}
    primary_loss = _first(PRIMARY_LOSS, loss_diagnosers)
    primary_fam = _first(PRIMARY_FAMILIARITY, diagnosers)

    validity, quantiles = [], {}
    for name, diagnoser in loss_diagnosers.items():
        row, members = validity_row(name, diagnoser, X_test, loss_test)
        validity.append(row)
        quantiles[name] = np.quantile(members, QUANTILE_GRID, axis=1).T
    familiar = diagnosers.get(primary_fam) if primary_fam else None
    held_out = grounded.build_reference(X_test, loss_test, correct, ids_test, previews_test,
                                        diagnosers.get(primary_loss), gap)
    attributes = attribute_metrics(attributes_test, attribute_phrases, loss_test, correct,
                                   loss_diagnosers, phrases, held_out)
    estimates = comparisons = []
    if primary_loss is not None:
        estimates = estimate_rows(diagnosers[primary_loss], quantiles[primary_loss], familiar,
                                  phrases)
        grounded.ground_estimates(estimates, phrases.embeddings, held_out)
        comparisons = comparison_rows(diagnosers[primary_loss], quantiles[primary_loss],
                                      phrase_pairs(settings, attribute_phrases), phrases, held_out,
                                      separations(attributes))
        attach_verdicts(attributes, comparisons)
    metrics = {
        "schema_version": SCHEMA_VERSION,
        "schema": METRICS_SCHEMA,
        "summary": {"modality": modality, "text_encoder": getattr(text_encoder, "name", None)},
        "data": _data_summary(X_train, X_test, loss_test, correct, modality, gap),
        "settings": settings.model_dump(mode="json"),
        "diagnosers": records,
        "primary": {"loss": primary_loss, "familiarity": primary_fam},
        "validity": validity,
        "score_quantiles": {n: q.tolist() for n, q in quantiles.items()},
        "familiarity": familiarity_metrics(diagnosers, primary_fam, phrases, X_test),
        "estimates": {"diagnoser": primary_loss, "rows": estimates},
        "discovery": {"diagnoser": primary_loss,
                      **(discovery(diagnosers[primary_loss], familiar, phrases, estimates, top_k)
                         if primary_loss else {"highest_loss": [], "least_familiar": []})},
        "comparisons": {"diagnoser": primary_loss, "rows": comparisons},
        "attributes": attributes,
        "phrases_used": phrases.in_domain,
    }
    return AnalysisResult(diagnosers=diagnosers, metrics=jsonable(metrics))
