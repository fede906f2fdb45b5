"""The analysis of one audit: fit the diagnosers, measure them, question them with phrases.

`analyse(...)` is the pure heart of an audit. Given the train/test embeddings and per-sample
losses of one release, a text encoder, the audit settings, the vocabularies and the attribute
phrase pairs, it fits every configured diagnoser (objective x arch, `n_members` each) on the train
split and returns an `AnalysisResult` whose `metrics` is the JSON-able content of `metrics.json`:

- `validity` (the paper's Table 2): per loss diagnoser, Pearson/Spearman/Kendall with p-values
  between predicted and true held-out loss, for each member (mean +- std) and for the ensemble's
  mean and median aggregation.
- `familiarity` (Table 1 and Figure 2): AUROC of in-domain phrases against each out-of-domain
  vocabulary, and per-probe-phrase logits before and after the sigmoid.
- `attributes` (Tables 3-5): per attribute column, the disparity of the loss (and of the error rate
  when `correct_test` is given) measured on held-out data beside the disparity predicted from the
  phrase pair ("attr", "not attr"), signed and absolute, and their agreement.
- `estimates`, `discovery`, `comparisons`: phrase estimates, top failure and least familiar
  phrases, and phrase-pair comparisons with every member's difference (for box plots).

Percentiles. Rank scores are standardised per member and regress outputs are in the audited
model's loss units, so neither compares across versions of a model. Every phrase estimate is
therefore also given as a *percentile*: where the phrase's score falls within the same member's
scores of the held-out samples (0 = below every held-out sample, 100 = above every one). The
per-member quantiles of the held-out scores are kept in `metrics["score_quantiles"]`, which is what
`compare_versions` uses to put two versions on one scale.

Domains: a vocabulary is out-of-domain when `llm2loss.vocab.is_out_of_domain(name)`; in-domain
phrases are those of the other vocabularies plus the configured phrases, the phrases of configured
pairs and both phrases of every attribute pair.

Modality gap: image data is queried with text, so `modality="image"` fits with gap="center" (the
phrase embeddings of the audit are the text reference); text data uses gap="none".
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.special import expit

from llm2loss import evaluation, insights
from llm2loss.analysis import grounded
from llm2loss.config import AuditSettings
from llm2loss.diagnoser import LossDiagnoser
from llm2loss.errors import DataError
from llm2loss.vocab import is_out_of_domain

__all__ = [
    "AnalysisResult",
    "METRICS_SCHEMA",
    "SCHEMA_VERSION",
    "analyse",
    "compare_versions",
    "gap_for",
    "jsonable",
    "percentiles",
    "regression_phrases",
]

SCHEMA_VERSION = 1
MODALITIES = ("text", "image")
LOSS_OBJECTIVES = ("rank", "regress")
#: Which fitted diagnoser speaks for the audit, best first (the paper's ranker is the most valid).
PRIMARY_LOSS = ("rank-mlp", "rank-linear", "regress-mlp", "regress-linear")
PRIMARY_FAMILIARITY = ("familiarity-mlp", "familiarity-linear")
QUANTILE_GRID = np.linspace(0.0, 1.0, 101)
TOP_K = 10
CORRELATIONS = ("pearson", "spearman", "kendall")

#: Regression rule (see `compare_versions`): a phrase or attribute regresses significantly when its
#: median percentile rose by at least this many points with P(rose) >= REGRESSION_P ...
REGRESSION_PERCENTILE_POINTS = 15.0
REGRESSION_P = 0.9
#: ... or a measured per-attribute error-rate disparity grew (in absolute value) by at least this.
REGRESSION_ERROR_DISPARITY = 0.05

METRICS_SCHEMA: dict[str, str] = {
    "schema_version": "version of this layout; bumped when a key changes meaning",
    "schema": "this description of every top-level key",
    "summary": "model, version, dataset, fingerprints, encoder, samples used/skipped, split sizes, "
    "stage times (filled by the pipeline; see llm2loss.report for the keys)",
    "data": "n_train, n_test, dim, modality, gap, held-out mean/median loss and error rate",
    "settings": "the AuditSettings of the audit",
    "diagnosers": "per fitted diagnoser: objective, arch, n_members, epochs, fit seconds",
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
    "discovery": "insights.discover over in-domain phrases: top failure phrases (highest mean "
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


@dataclass
class AnalysisResult:
    """The fitted diagnosers by name ("rank-mlp", ...) and the JSON-able metrics of one audit."""

    diagnosers: dict[str, LossDiagnoser]
    metrics: dict[str, Any]


# --------------------------------------------------------------------------- small helpers


def jsonable(value: Any) -> Any:
    """`value` with numpy types turned into Python ones and NaN/inf into None (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(float(value)) else None
    return value


def gap_for(modality: str) -> Literal["none", "center"]:
    """The diagnosers' gap option for data of `modality`: text queries of image data are centred."""
    if modality not in MODALITIES:
        raise ValueError(f"unknown modality {modality!r}: choose one of {', '.join(MODALITIES)}")
    return "none" if modality == "text" else "center"


def percentiles(member_scores: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """Per-member percentile (0-100) of scores (K, k) among held-out scores given as quantiles (K, Q)."""
    grid = np.linspace(0.0, 100.0, quantiles.shape[1])
    return np.stack([np.interp(s, q, grid) for s, q in zip(member_scores, quantiles)])


def _quartiles(values: np.ndarray) -> list[float]:
    """min, q1, median, q3, max of a 1-D array."""
    return np.quantile(values, [0.0, 0.25, 0.5, 0.75, 1.0]).tolist()


def _correlation_dict(pred: np.ndarray, true: np.ndarray) -> dict[str, dict[str, float]]:
    """{"pearson": {"r", "p"}, "spearman": ..., "kendall": ...} via llm2loss.evaluation."""
    result = evaluation.correlations(pred, true)
    return {name: {"r": float(result[name][0]), "p": float(result[name][1])} for name in CORRELATIONS}


def _first(names: tuple[str, ...], available: dict[str, Any]) -> str | None:
    return next((name for name in names if name in available), None)


# --------------------------------------------------------------------------- input checks


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


# --------------------------------------------------------------------------- phrases


@dataclass
class _Phrases:
    """The phrases of one audit, their embeddings, and where each came from."""

    in_domain: list[str]
    source: dict[str, str]
    out_of_domain: dict[str, list[str]]
    embeddings: dict[str, np.ndarray]

    def matrix(self, phrases: list[str]) -> np.ndarray:
        return np.stack([self.embeddings[p] for p in phrases])


def _collect_phrases(settings: AuditSettings, vocabularies: dict[str, list[str]],
                     attribute_phrases: dict[str, tuple[str, str]], text_encoder: Any) -> _Phrases:
    """In-domain phrases (with sources), out-of-domain vocabularies, and one encoding of all."""
    source: dict[str, str] = {}
    for phrase in settings.phrases:
        source.setdefault(phrase, "configured")
    for a, b in settings.pairs:
        source.setdefault(a, "pair")
        source.setdefault(b, "pair")
    for name, (yes, no) in attribute_phrases.items():
        source.setdefault(yes, f"attribute {name}")
        source.setdefault(no, f"attribute {name}")
    out_of_domain: dict[str, list[str]] = {}
    for name, phrases in vocabularies.items():
        if is_out_of_domain(name):
            out_of_domain[name] = list(phrases)
            continue
        for phrase in phrases:
            source.setdefault(phrase, name)
    empty = [p for p in source if not p.strip()]
    if empty:
        raise DataError("an empty phrase was configured; remove blank phrases from audit.phrases, "
                        "audit.pairs and the attribute phrases")
    everything = list(dict.fromkeys([*source, *(p for ps in out_of_domain.values() for p in ps)]))
    if not everything:
        return _Phrases([], {}, out_of_domain, {})
    encoded = np.asarray(text_encoder.encode_text(everything), dtype=np.float32)
    return _Phrases(list(source), source, out_of_domain, dict(zip(everything, encoded)))


# --------------------------------------------------------------------------- fitting


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
                             "gap": gap, "epochs": diagnoser.n_epochs_,
                             "fit_seconds": time.perf_counter() - started}
            diagnosers[name] = diagnoser
    return diagnosers, records


# --------------------------------------------------------------------------- Table 2


def _validity_row(name: str, diagnoser: LossDiagnoser, X_test: np.ndarray,
                  loss_test: np.ndarray) -> tuple[dict[str, Any], np.ndarray]:
    """Correlations of one loss diagnoser on held-out data, and its member scores (K, n)."""
    members = diagnoser.predict_members(X_test)
    per_member = [_correlation_dict(m, loss_test) for m in members]
    summary = {
        corr: {
            "mean": float(np.mean([m[corr]["r"] for m in per_member])),
            "std": float(np.std([m[corr]["r"] for m in per_member])),
            "p_median": float(np.median([m[corr]["p"] for m in per_member])),
        }
        for corr in CORRELATIONS
    }
    row = {
        "diagnoser": name, "objective": diagnoser.objective, "arch": diagnoser.arch,
        "n_members": diagnoser.n_members, "members": summary,
        "ensemble_mean": _correlation_dict(members.mean(axis=0), loss_test),
        "ensemble_median": _correlation_dict(np.median(members, axis=0), loss_test),
    }
    return row, members


# --------------------------------------------------------------------------- Table 1, Figure 2


def _familiarity(diagnosers: dict[str, LossDiagnoser], primary: str | None, phrases: _Phrases,
                 X_test: np.ndarray) -> dict[str, Any]:
    """AUROC rows per familiarity diagnoser x out-of-domain vocabulary, and probe logits."""
    names = [n for n in diagnosers if diagnosers[n].objective == "familiarity"]
    if not names or primary is None:
        return {"available": False, "reason": "no familiarity diagnoser was configured"}
    result: dict[str, Any] = {"available": True, "reason": None, "diagnoser": primary,
                              "in_domain_count": len(phrases.in_domain),
                              "out_of_domain": sorted(phrases.out_of_domain), "auroc": []}
    if phrases.in_domain and phrases.out_of_domain:
        E_in = phrases.matrix(phrases.in_domain)
        for name in names:
            scores_in = diagnosers[name].predict(E_in, modality="text")
            for vocab, ood in phrases.out_of_domain.items():
                scores_out = diagnosers[name].predict(phrases.matrix(ood), modality="text")
                result["auroc"].append({
                    "diagnoser": name, "out_of_domain": vocab, "n_in": len(phrases.in_domain),
                    "n_out": len(ood),
                    "auroc": float(evaluation.familiarity_auroc(scores_in, scores_out))})
    else:
        result["auroc_reason"] = ("no in-domain phrases" if not phrases.in_domain
                                  else "no out-of-domain vocabulary") + " to compare; add " \
            "audit.phrases or an in-domain vocabulary and an out-of-domain one (e.g. text_ood)"
    result["probes"] = _probe_rows(diagnosers[primary], phrases)
    data_logits = diagnosers[primary].predict_members(X_test)
    result["data"] = {"logit": float(data_logits.mean()),
                      "probability": float(expit(data_logits).mean())}
    return result


def _probe_rows(diagnoser: LossDiagnoser, phrases: _Phrases) -> list[dict[str, Any]]:
    """Figure 2: logit and sigmoid probability (mean, std over members) of every phrase."""
    probes = [(p, "in-domain", phrases.source[p]) for p in phrases.in_domain]
    probes += [(p, "out-of-domain", vocab) for vocab, ps in phrases.out_of_domain.items() for p in ps]
    if not probes:
        return []
    logits = diagnoser.predict_members(phrases.matrix([p for p, _, _ in probes]), modality="text")
    probs = expit(logits)
    return [{"phrase": p, "domain": domain, "source": src,
             "logit": float(logits[:, i].mean()), "logit_std": float(logits[:, i].std()),
             "probability": float(probs[:, i].mean()), "probability_std": float(probs[:, i].std())}
            for i, (p, domain, src) in enumerate(probes)]


# --------------------------------------------------------------------------- estimates


def _estimates(diagnoser: LossDiagnoser, quantiles: np.ndarray, familiar: LossDiagnoser | None,
               phrases: _Phrases) -> list[dict[str, Any]]:
    """Per in-domain phrase (`insights.estimate`): score, percentile among held-out samples,
    P(above the held-out median) and familiarity, each with its spread over members."""
    if not phrases.in_domain:
        return []
    E = phrases.matrix(phrases.in_domain)
    table = insights.estimate(diagnoser, E, phrases.in_domain)
    pct = percentiles(diagnoser.predict_members(E, modality="text"), quantiles)
    fam = expit(familiar.predict_members(E, modality="text")) if familiar is not None else None
    rows = []
    for i, rec in enumerate(table.to_dict(orient="records")):
        rows.append({
            "phrase": rec["phrase"], "source": phrases.source[rec["phrase"]],
            "mean": rec["mean"], "std": rec["std"], "quartiles": [rec[q] for q in insights.Q_COLUMNS],
            "percentile": float(pct[:, i].mean()), "percentile_std": float(pct[:, i].std()),
            "p_above_median": float((pct[:, i] > 50.0).mean() + 0.5 * (pct[:, i] == 50.0).mean()),
            "familiarity": None if fam is None else float(fam[:, i].mean()),
            "familiarity_std": None if fam is None else float(fam[:, i].std()),
            "p_familiar": None if fam is None else float((fam[:, i] > 0.5).mean()),
        })
    return rows


def _discovery(diagnoser: LossDiagnoser, familiar: LossDiagnoser | None, phrases: _Phrases,
               estimates: list[dict[str, Any]], top_k: int) -> dict[str, Any]:
    """`insights.discover` over the in-domain phrases: highest estimated loss, least familiar."""
    if not phrases.in_domain:
        return {"top_failures": [], "least_familiar": []}
    found = insights.discover(diagnoser, phrases.matrix(phrases.in_domain), phrases.in_domain,
                              top_k, familiarity=familiar)
    by_phrase = {r["phrase"]: r for r in estimates}
    keep = ("phrase", "source", "mean", "std", "percentile", "percentile_std", "p_above_median",
            "familiarity", "familiarity_std", "p_familiar", "measured", "examples")
    least = [] if found.least_familiar is None else found.least_familiar["phrase"].tolist()
    return {"top_failures": [{k: by_phrase[p][k] for k in keep}
                             for p in found.highest_loss["phrase"]],
            "least_familiar": [{k: by_phrase[p][k] for k in keep} for p in least]}


# --------------------------------------------------------------------------- Figure 3


def _comparisons(diagnoser: LossDiagnoser, quantiles: np.ndarray,
                 pairs: list[tuple[str, str, str]], phrases: _Phrases,
                 held_out: grounded.Reference,
                 separation: dict[tuple[str, str], float | None]) -> list[dict[str, Any]]:
    """Each (a, b, source) pair: P(a worse than b), the members' differences, and the grounded
    measurement and verdict (`grounded.grounded_comparisons`)."""
    if not pairs:
        return []
    checked = grounded.grounded_comparisons(diagnoser, pairs, phrases.embeddings, held_out,
                                            separation)
    A = phrases.matrix([a for a, _, _ in pairs])
    B = phrases.matrix([b for _, b, _ in pairs])
    comparison = diagnoser.compare(A, B, modality="text")
    pct_a = percentiles(diagnoser.predict_members(A, modality="text"), quantiles)
    pct_b = percentiles(diagnoser.predict_members(B, modality="text"), quantiles)
    rows = []
    for i, (a, b, src) in enumerate(pairs):
        diff_pct = pct_a[:, i] - pct_b[:, i]
        rows.append({
            "a": a, "b": b, "source": src, "p_a_worse": float(comparison.p_higher[i]),
            "mean_difference": float(comparison.differences[:, i].mean()),
            "quartiles": [float(q) for q in comparison.quartiles[:, i]],
            "differences": comparison.differences[:, i].tolist(),
            "percentile_differences": diff_pct.tolist(),
            "percentile_quartiles": _quartiles(diff_pct),
            **checked[i],
        })
    return rows


def _separations(attributes: dict[str, Any]) -> dict[tuple[str, str], float | None]:
    """(phrase_attr, phrase_not) -> the attribute's 0-shot AUROC, for the comparisons."""
    return {(r["phrase_attr"], r["phrase_not"]): r.get("zero_shot_auroc")
            for r in attributes.get("rows", [])}


def _attach_verdicts(attributes: dict[str, Any], comparisons: list[dict[str, Any]]) -> None:
    """Copy each attribute pair's verdict onto its attribute row; add the track record."""
    by_source = {c["source"]: c for c in comparisons}
    for row in attributes.get("rows", []):
        found = by_source.get(f"attribute {row['attribute']}")
        if found is not None:
            row["verdict"], row["reason"] = found["verdict"], found["reason"]
    rows = attributes.get("rows", [])
    if rows:
        attributes["track_record"] = grounded.track_record(rows)
        attributes["validity"] = grounded.validity_correlation(rows)


# --------------------------------------------------------------------------- Tables 3-5


def _bool_mask(column: pd.Series) -> np.ndarray | None:
    """The column as a boolean mask, or None when it is not a two-valued attribute."""
    values = column.dropna()
    if len(values) != len(column):
        return None
    if values.dtype == bool:
        return values.to_numpy()
    unique = set(values.unique().tolist())
    if unique <= {0, 1}:
        return values.to_numpy().astype(bool)
    if unique <= {-1, 1}:  # CelebA writes attributes as -1 / 1
        return values.to_numpy() == 1
    return None


def _disparity(values: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """{"signed", "absolute"} of metric(attr) - metric(not attr) via llm2loss.evaluation."""
    result = evaluation.attribute_disparity(values, mask)
    return {"signed": float(result["signed"]), "absolute": float(result["absolute"])}


def _attributes(attributes_test: pd.DataFrame | None, attribute_phrases: dict[str, tuple[str, str]],
                loss_test: np.ndarray, correct_test: np.ndarray | None,
                loss_diagnosers: dict[str, LossDiagnoser], phrases: _Phrases,
                held_out: grounded.Reference) -> dict[str, Any]:
    """Measured vs predicted disparity per attribute, and their agreement per diagnoser/metric."""
    if attributes_test is None or not len(attributes_test.columns):
        return {"available": False, "reason": "the dataset has no attribute columns"}
    rows, skipped = [], []
    for column in attributes_test.columns:
        mask = _bool_mask(attributes_test[column])
        reason = None
        if column not in attribute_phrases:
            reason = "no phrase pair; set dataset.attribute_phrases for it"
        elif mask is None:
            reason = "not a two-valued (bool, 0/1 or -1/1) column without missing values"
        elif mask.all() or not mask.any():
            reason = "only one group is present in the held-out data"
        if reason is not None:
            skipped.append({"attribute": str(column), "reason": reason})
            continue
        yes, no = attribute_phrases[column]
        row = _attribute_row(str(column), mask, yes, no, loss_test, correct_test,
                             loss_diagnosers, phrases)
        row.update(grounded.attribute_truth(mask, loss_test, held_out, phrases.embeddings[yes],
                                            phrases.embeddings[no]))
        rows.append(row)
    return {"available": bool(rows), "reason": None if rows else "no usable attribute column",
            "rows": rows, "skipped": skipped,
            "agreement": _agreement(rows, list(loss_diagnosers), correct_test is not None)}


def _attribute_row(column: str, mask: np.ndarray, yes: str, no: str, loss_test: np.ndarray,
                   correct_test: np.ndarray | None, loss_diagnosers: dict[str, LossDiagnoser],
                   phrases: _Phrases) -> dict[str, Any]:
    measured = {"loss": _disparity(loss_test, mask),
                "error": None if correct_test is None else _disparity(1.0 - correct_test, mask)}
    pair = np.stack([phrases.embeddings[yes], phrases.embeddings[no]])
    predicted = {}
    for name, diagnoser in loss_diagnosers.items():
        comparison = diagnoser.compare(pair[:1], pair[1:], modality="text")
        scores = diagnoser.predict(pair, modality="text")
        predicted[name] = {**_disparity(scores, np.array([True, False])),
                           "p_attr_worse": float(comparison.p_higher[0])}
    return {"attribute": column, "phrase_attr": yes, "phrase_not": no,
            "n_attr": int(mask.sum()), "n_not": int((~mask).sum()),
            "measured": measured, "predicted": predicted}


def _agreement(rows: list[dict[str, Any]], names: list[str], has_error: bool) -> list[dict[str, Any]]:
    """Per loss diagnoser and measured metric: correlations and sign accuracy across attributes."""
    out = []
    for metric in ("loss", "error") if has_error else ("loss",):
        true = np.array([r["measured"][metric]["signed"] for r in rows], dtype=float)
        for name in names:
            pred = np.array([r["predicted"][name]["signed"] for r in rows], dtype=float)
            entry: dict[str, Any] = {"diagnoser": name, "metric": metric, "n": len(rows)}
            if len(rows) < 3:
                entry["reason"] = "fewer than 3 attributes: correlations are not defined"
            else:
                result = evaluation.disparity_agreement(true, pred)
                for corr in CORRELATIONS:
                    entry[corr] = {"r": float(result[corr][0]), "p": float(result[corr][1])}
                entry["sign_accuracy"] = float(result["sign_accuracy"])
            out.append(entry)
    return out


# --------------------------------------------------------------------------- analyse


def _pairs(settings: AuditSettings, attribute_phrases: dict[str, tuple[str, str]]
           ) -> list[tuple[str, str, str]]:
    pairs = [(a, b, "configured") for a, b in settings.pairs]
    pairs += [(yes, no, f"attribute {name}") for name, (yes, no) in attribute_phrases.items()]
    return pairs


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
    phrases = _collect_phrases(settings, vocabularies, attribute_phrases, text_encoder)
    text_reference = np.stack(list(phrases.embeddings.values())) if phrases.embeddings else None
    diagnosers, records = _fit_all(np.asarray(X_train, dtype=np.float32), loss_train, settings,
                                   gap, text_reference)
    loss_diagnosers = {n: d for n, d in diagnosers.items() if d.objective in LOSS_OBJECTIVES}
    primary_loss = _first(PRIMARY_LOSS, loss_diagnosers)
    primary_fam = _first(PRIMARY_FAMILIARITY, diagnosers)

    validity, quantiles = [], {}
    for name, diagnoser in loss_diagnosers.items():
        row, members = _validity_row(name, diagnoser, X_test, loss_test)
        validity.append(row)
        quantiles[name] = np.quantile(members, QUANTILE_GRID, axis=1).T
    familiar = diagnosers.get(primary_fam) if primary_fam else None
    held_out = grounded.build_reference(X_test, loss_test, correct, ids_test, previews_test,
                                        diagnosers.get(primary_loss), gap)
    attributes = _attributes(attributes_test, attribute_phrases, loss_test, correct,
                             loss_diagnosers, phrases, held_out)
    estimates = comparisons = []
    if primary_loss is not None:
        estimates = _estimates(diagnosers[primary_loss], quantiles[primary_loss], familiar, phrases)
        grounded.ground_estimates(estimates, phrases.embeddings, held_out)
        comparisons = _comparisons(diagnosers[primary_loss], quantiles[primary_loss],
                                   _pairs(settings, attribute_phrases), phrases, held_out,
                                   _separations(attributes))
        _attach_verdicts(attributes, comparisons)
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
        "familiarity": _familiarity(diagnosers, primary_fam, phrases, X_test),
        "estimates": {"diagnoser": primary_loss, "rows": estimates},
        "discovery": {"diagnoser": primary_loss,
                      **(_discovery(diagnosers[primary_loss], familiar, phrases, estimates, top_k)
                         if primary_loss else {"top_failures": [], "least_familiar": []})},
        "comparisons": {"diagnoser": primary_loss, "rows": comparisons},
        "attributes": attributes,
        "phrases_used": phrases.in_domain,
    }
    return AnalysisResult(diagnosers=diagnosers, metrics=jsonable(metrics))


# --------------------------------------------------------------------------- versions


REGRESSION_RULE = (
    f"significant_regression is true when a phrase or attribute phrase's median percentile among "
    f"held-out samples rose by at least {REGRESSION_PERCENTILE_POINTS:g} points with P(rose) >= "
    f"{REGRESSION_P:g} over all (previous member, current member) pairs, or when a measured "
    f"per-attribute error-rate disparity grew in absolute value by at least "
    f"{REGRESSION_ERROR_DISPARITY:g}"
)


def regression_phrases(prev_metrics: dict[str, Any], cur_metrics: dict[str, Any]) -> list[str]:
    """The phrases `compare_versions` needs embeddings of: both versions' phrases, sorted."""
    found: set[str] = set()
    for metrics in (prev_metrics, cur_metrics):
        found.update(metrics.get("phrases_used", []))
        for row in metrics.get("attributes", {}).get("rows", []):
            found.update((row["phrase_attr"], row["phrase_not"]))
    return sorted(found)


def _pair_change(prev: np.ndarray, cur: np.ndarray) -> dict[str, Any]:
    """Change cur - prev over all (previous member, current member) pairs of percentiles."""
    change = (cur[None, :] - prev[:, None]).ravel()
    return {"previous": float(prev.mean()), "current": float(cur.mean()),
            "change": float(np.median(change)), "p_rose": float((change > 0).mean() + 0.5 * (change == 0).mean()),
            "quartiles": _quartiles(change)}


def _common_loss_diagnoser(prev_diagnosers: dict[str, Any], prev_metrics: dict[str, Any],
                           cur_diagnosers: dict[str, Any], cur_metrics: dict[str, Any]) -> str | None:
    """The current primary loss diagnoser when both versions have it, else the best common one."""
    names = [cur_metrics.get("primary", {}).get("loss"), *PRIMARY_LOSS]
    for name in names:
        if (name and name in prev_diagnosers and name in cur_diagnosers
                and name in prev_metrics.get("score_quantiles", {})
                and name in cur_metrics.get("score_quantiles", {})):
            return name
    return None


def _measured_changes(prev_metrics: dict[str, Any], cur_metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """Per attribute in both versions and per measured metric: previous, current, change."""
    prev_rows = {r["attribute"]: r for r in prev_metrics.get("attributes", {}).get("rows", [])}
    out = []
    for row in cur_metrics.get("attributes", {}).get("rows", []):
        before = prev_rows.get(row["attribute"])
        if before is None:
            continue
        for metric in ("loss", "error"):
            if row["measured"].get(metric) is None or before["measured"].get(metric) is None:
                continue
            p, c = before["measured"][metric]["signed"], row["measured"][metric]["signed"]
            if p is None or c is None:
                continue
            out.append({"attribute": row["attribute"], "metric": metric, "previous": p,
                        "current": c, "change": c - p, "absolute_change": abs(c) - abs(p)})
    return out


def compare_versions(*, prev_diagnosers: dict[str, LossDiagnoser], prev_metrics: dict[str, Any],
                     cur_diagnosers: dict[str, LossDiagnoser], cur_metrics: dict[str, Any],
                     phrase_embeddings: Any, phrases: list[str], top_k: int = TOP_K) -> dict[str, Any]:
    """The regression report of a version against the previous one (same dataset and encoder).

    Scale: the two models' losses differ in scale, so each phrase is placed by each member of each
    version at its *percentile* among that version's held-out scores (`score_quantiles` of the
    metrics). P(rose) is the fraction of (previous member, current member) pairs whose current
    percentile exceeds the previous one; `change` is the median of those pairwise differences.
    Attributes: the same for the percentile gap between the "attr" and "not attr" phrases, and
    the change of the measured disparities. `significant_regression` follows `REGRESSION_RULE`.
    """
    name = _common_loss_diagnoser(prev_diagnosers, prev_metrics, cur_diagnosers, cur_metrics)
    report: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "method": "percentile",
                              "rule": REGRESSION_RULE, "diagnoser": name,
                              "previous": {k: prev_metrics.get("summary", {}).get(k)
                                           for k in ("model", "version")},
                              "current": {k: cur_metrics.get("summary", {}).get(k)
                                          for k in ("model", "version")}}
    phrase_rows: list[dict[str, Any]] = []
    attribute_rows: list[dict[str, Any]] = []
    if name is None:
        report["reason"] = ("the two versions share no loss diagnoser with held-out score "
                            "quantiles; audit both with the same diagnoser settings")
    elif phrases:
        E = np.asarray(phrase_embeddings, dtype=np.float32)
        if E.shape[0] != len(phrases):
            raise DataError(f"phrase_embeddings has {E.shape[0]} rows for {len(phrases)} phrases; "
                            "encode exactly the given phrases, in order")
        prev_pct = percentiles(prev_diagnosers[name].predict_members(E, modality="text"),
                               np.asarray(prev_metrics["score_quantiles"][name]))
        cur_pct = percentiles(cur_diagnosers[name].predict_members(E, modality="text"),
                              np.asarray(cur_metrics["score_quantiles"][name]))
        index = {p: i for i, p in enumerate(phrases)}
        phrase_rows = [{"phrase": p, **_pair_change(prev_pct[:, i], cur_pct[:, i])}
                       for p, i in index.items()]
        attribute_rows = _estimated_attribute_changes(prev_metrics, cur_metrics, index,
                                                      prev_pct, cur_pct)
    measured = _measured_changes(prev_metrics, cur_metrics)
    report["phrases_rose"] = sorted((r for r in phrase_rows if r["change"] > 0),
                                    key=lambda r: -r["change"])[:top_k]
    report["phrases_fell"] = sorted((r for r in phrase_rows if r["change"] < 0),
                                    key=lambda r: r["change"])[:top_k]
    report["attributes_estimated"] = sorted(attribute_rows, key=lambda r: -abs(r["change"]))
    report["attributes_measured"] = sorted(measured, key=lambda r: -abs(r["absolute_change"]))
    report["overall"] = {k: {"previous": prev_metrics.get("data", {}).get(k),
                             "current": cur_metrics.get("data", {}).get(k)}
                         for k in ("test_loss_mean", "test_error_rate")}
    reasons = _regression_reasons(phrase_rows + attribute_rows, measured)
    report["significant_regression"] = bool(reasons)
    report["reasons"] = reasons
    return jsonable(report)


def _estimated_attribute_changes(prev_metrics: dict[str, Any], cur_metrics: dict[str, Any],
                                 index: dict[str, int], prev_pct: np.ndarray,
                                 cur_pct: np.ndarray) -> list[dict[str, Any]]:
    """Per attribute of both versions: change of the percentile gap P(attr) - P(not attr)."""
    prev_names = {r["attribute"] for r in prev_metrics.get("attributes", {}).get("rows", [])}
    out = []
    for row in cur_metrics.get("attributes", {}).get("rows", []):
        yes, no = row["phrase_attr"], row["phrase_not"]
        if row["attribute"] not in prev_names or yes not in index or no not in index:
            continue
        gap_prev = prev_pct[:, index[yes]] - prev_pct[:, index[no]]
        gap_cur = cur_pct[:, index[yes]] - cur_pct[:, index[no]]
        out.append({"attribute": row["attribute"], "phrase_attr": yes, "phrase_not": no,
                    **_pair_change(gap_prev, gap_cur)})
    return out


def _regression_reasons(estimated: list[dict[str, Any]], measured: list[dict[str, Any]]) -> list[str]:
    """The sentences saying why a regression is significant (empty list: it is not)."""
    reasons = []
    for row in estimated:
        if row["change"] >= REGRESSION_PERCENTILE_POINTS and row["p_rose"] >= REGRESSION_P:
            what = f"phrase {row['phrase']!r}" if "phrase" in row else f"attribute {row['attribute']!r}"
            reasons.append(f"{what} rose {row['change']:.1f} percentile points "
                           f"(P(rose) = {row['p_rose']:.2f})")
    for row in measured:
        if row["metric"] == "error" and row["absolute_change"] >= REGRESSION_ERROR_DISPARITY:
            reasons.append(f"measured error-rate disparity of attribute {row['attribute']!r} grew "
                           f"from {row['previous']:+.3f} to {row['current']:+.3f}")
    return reasons
