"""Questions in words to a finished audit: estimate, compare, discover.

Used by the `llm2loss` command line and the `query-audit` flow alike. Diagnosers are loaded from
the store (safetensors + JSON: loading runs no code) and phrases are embedded with the audit's own
encoder, so answers live in the same space the diagnosers were trained in.

Answers are in the report's units and carry the report's evidence: estimates give the phrase's
percentile among held-out samples (raw scores too) and what the held-out samples nearest to it
measured; comparisons give the measured gap between the samples each phrase describes, the
verdict ("a worse", "b worse" or "uncertain", `llm2loss.verdicts`) and its reason, and examples.
The held-out samples are the audit's own (`llm2loss.held_out`), checked against their sha256.

Torch-free by default: when the audit's encoder runs in numpy (`encoders.torch_free_encoder`: the
default MiniLM does) and every diagnoser is one `llm2loss.diagnoser.numpy_scoring` scores, the question
is answered without importing torch (2-6 s of a cold command's time); the answers are the torch
path's to ~1e-5. Otherwise, or with `torch_free=False`, the encoder and `LossDiagnoser`s run in
torch as before; `AuditQuery.backend` says which ran.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit

from llm2loss import audits
from llm2loss.config import StoreSettings
from llm2loss.errors import DataError, NotFoundError, WeightsError
from llm2loss.phrases import MAX_PHRASE_CHARS, normalise_phrases  # noqa: F401 (re-exported)
from llm2loss.verdicts import A_WORSE, B_WORSE

LOSS_DIAGNOSER = "rank-mlp"
FAMILIARITY_DIAGNOSER = "familiarity-mlp"
log = logging.getLogger(__name__)


def percentiles(member_scores: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """Per-member percentile (0-100) of scores (K, k) among held-out scores given as quantiles
    (K, Q). The definition of `llm2loss.analysis.percentiles`, here so that a query imports
    neither the analysis package nor, through it, torch (a test keeps the two equal)."""
    grid = np.linspace(0.0, 100.0, quantiles.shape[1])
    return np.stack([np.interp(s, q, grid) for s, q in zip(member_scores, quantiles)])


def torch_free_scorers(encoder_spec: str, folders: dict[str, Path]) -> tuple[Any, dict[str, Any]] | None:
    """(encoder, diagnosers) computed in numpy, or None when the encoder or any diagnoser is not
    one the numpy path covers (the reason is logged); the caller then uses torch."""
    from llm2loss.diagnoser.numpy_scoring import NotCovered, NumpyDiagnoser
    from llm2loss.encoders import torch_free_encoder

    try:
        encoder = torch_free_encoder(encoder_spec)
    except WeightsError as exc:  # the torch path reports a broken model folder in its own words
        log.info("encoder %s not run in numpy (%s); using torch", encoder_spec, exc)
        return None
    if encoder is None:
        return None
    try:
        return encoder, {name: NumpyDiagnoser.load(folder) for name, folder in folders.items()}
    except NotCovered as exc:
        log.info("a diagnoser is not scored in numpy (%s); using torch", exc)
        return None


def torch_scorers(encoder_spec: str, folders: dict[str, Path]) -> tuple[Any, dict[str, Any]]:
    """(encoder, diagnosers) in torch: `pipeline.workers.get_encoder` and `LossDiagnoser.load`."""
    from llm2loss.diagnoser import LossDiagnoser
    from llm2loss.pipeline.workers import get_encoder

    return get_encoder(encoder_spec), {name: LossDiagnoser.load(f) for name, f in folders.items()}


def validate_phrases(phrases: list[str]) -> list[str]:
    """The phrases normalised and validated (`llm2loss.phrases.normalise_phrase`: UTF-8, one line,
    no control characters, something visible, at most MAX_PHRASE_CHARS characters).

    An empty list passes (an audit may configure no extra phrases); callers that need at least
    one phrase require it themselves.
    """
    return normalise_phrases(list(phrases))


def completed_manifest(store_settings: StoreSettings, model: str, version: str) -> dict[str, Any]:
    """The manifest of the finished audit of `model@version` (`audits.require_finished`:
    NotFoundError naming the known releases, or saying how to run an unfinished audit)."""
    from llm2loss.pipeline.workers import get_store

    return audits.require_finished(get_store(store_settings), model, version)


class AuditQuery:
    """A finished audit opened for questions: its manifest, encoder and diagnosers.

    torch_free (default True): numpy encoder and diagnosers when they cover this audit (see the
    module doc), else torch; `backend` is "numpy" or "torch", whichever was loaded.
    """

    def __init__(self, store_settings: StoreSettings, model: str, version: str, *,
                 torch_free: bool = True) -> None:
        self.manifest = completed_manifest(store_settings, model, version)
        self.model, self.version = model, version
        self._tmp = tempfile.TemporaryDirectory()
        from llm2loss.pipeline.workers import get_store

        self._store = get_store(store_settings)
        folders = audits.download_diagnosers(self._store, model, version, Path(self._tmp.name))
        spec = self.manifest["encoder"]
        scorers = torch_free_scorers(spec, folders) if torch_free else None
        self.backend = "numpy" if scorers is not None else "torch"
        self.encoder, self.diagnosers = scorers if scorers is not None else torch_scorers(spec, folders)
        self._metrics: dict[str, Any] | None = None
        self._reference: Any = None

    @property
    def metrics(self) -> dict[str, Any]:
        """The audit's metrics.json (read once)."""
        if self._metrics is None:
            metrics = self._store.read_json(self.manifest["metrics"])
            if not isinstance(metrics, dict):
                raise DataError(f"metrics of {self.model}@{self.version} are not a JSON object; "
                                "audit the release again")
            self._metrics = metrics
        return self._metrics

    def reference(self) -> Any:
        """The audit's held-out samples as a grounding Reference, or None for audits written
        before they were kept (their answers then carry no measured columns)."""
        if self._reference is None and self.metrics.get("held_out") is not None:
            from llm2loss.held_out import read_held_out

            d = self._diagnoser(LOSS_DIAGNOSER)
            centred = d.gap == "center"
            self._reference = read_held_out(
                self._store, self.metrics["held_out"], dim=d.dim_,
                data_mean=d.data_mean_ if centred else None,
                text_mean=d.text_mean_ if centred else None)
        return self._reference

    def _percentiles(self, embeddings: np.ndarray) -> np.ndarray | None:
        """Members' percentiles (K, n) of phrase embeddings among held-out scores, or None."""
        quantiles = (self.metrics.get("score_quantiles") or {}).get(LOSS_DIAGNOSER)
        d = self._diagnoser(LOSS_DIAGNOSER)
        try:
            q = np.asarray(quantiles, dtype=np.float64)
        except (TypeError, ValueError):
            return None
        if q.ndim != 2 or q.shape[0] != d.n_members or q.shape[1] < 2:
            return None
        return percentiles(d.predict_members(embeddings, space="text"), q)

    def _separation(self, a: str, b: str) -> float | None:
        """The 0-shot AUROC of (a, b) when it is one of the audit's attribute pairs."""
        for row in (self.metrics.get("attributes") or {}).get("rows", []) or []:
            if isinstance(row, dict) and (row.get("phrase_attr"), row.get("phrase_not")) == (a, b):
                auroc = row.get("zero_shot_auroc")
                return float(auroc) if isinstance(auroc, (int, float)) else None
        return None

    @property
    def modality(self) -> str:
        """"text" or "image": the audited data's modality (from the audit's summary)."""
        summary = self.manifest.get("summary") or {}
        return str(summary.get("modality") or self.encoder.modality)

    def _diagnoser(self, name: str) -> Any:
        if name not in self.diagnosers:
            raise NotFoundError(
                f"the audit of {self.model}@{self.version} has no diagnoser {name!r}; "
                f"it has {sorted(self.diagnosers)}: audit it again with the rank objective and "
                "the mlp arch"
            )
        return self.diagnosers[name]

    def estimate(self, phrases: list[str]) -> pd.DataFrame:
        """Estimated loss (rank diagnoser) and familiarity of each phrase, with uncertainty.

        Columns: phrase, percentile, percentile_std, p_above_median (where the phrase's score
        falls among held-out samples' scores, per member), loss_mean, loss_std, loss_q0..loss_q4
        (raw scores); measured_loss, measured_low, measured_high, measured_error,
        measured_percentile, n_retrieved and examples (what the held-out samples nearest to the
        phrase measured, `insights.estimate`); and, when the audit trained a familiarity
        diagnoser, familiarity_mean and familiarity_std: the mean and spread over the members of
        P(the phrase looks like the audited data), in [0, 1].
        """
        from llm2loss.insights import estimate

        phrases = validate_phrases(phrases)
        emb = self.encoder.encode_text(phrases)
        loss = estimate(self._diagnoser(LOSS_DIAGNOSER), emb, phrases,
                        reference=self.reference())
        grounded = [c for c in loss.columns if c.startswith("measured_") or c in ("n_retrieved",
                                                                                   "examples")]
        table = loss.rename(columns={c: f"loss_{c}" for c in loss.columns
                                     if c != "phrase" and c not in grounded})
        pct = self._percentiles(emb)
        if pct is not None:
            table.insert(1, "percentile", pct.mean(axis=0))
            table.insert(2, "percentile_std", pct.std(axis=0))
            table.insert(3, "p_above_median", (pct > 50).mean(axis=0) + 0.5 * (pct == 50).mean(axis=0))
        familiarity = self.familiarity(emb)
        if familiarity is not None:
            table["familiarity_mean"] = familiarity.mean(axis=0)
            table["familiarity_std"] = familiarity.std(axis=0)
        return table

    def familiarity(self, embeddings: np.ndarray) -> np.ndarray | None:
        """Members' P(familiar) of phrase embeddings, shape (K, n): the sigmoid of their logits.

        None when the audit trained no familiarity diagnoser.
        """
        if FAMILIARITY_DIAGNOSER not in self.diagnosers:
            return None
        logits = self.diagnosers[FAMILIARITY_DIAGNOSER].predict_members(embeddings, space="text")
        return expit(np.asarray(logits, dtype=np.float64))

    def compare(self, a: str, b: str) -> dict[str, Any]:
        """Is the model worse on a than on b? The report's verdict with its evidence.

        Keys: phrase_a, phrase_b, p_a_worse (ties 1/2), percentile_diff (median over members of
        percentile(a) - percentile(b)), median_diff and q0..q4 (raw member differences),
        measured_diff, measured_low, measured_high, n_a, n_b (measured loss gap between the
        held-out samples that look more like a and those that look more like b), verdict ("a
        worse" | "b worse" | "uncertain"), reason, uncertain (bool), sentence, examples_a/b.
        """
        from llm2loss.insights import compare_phrases

        a, b = validate_phrases([a, b])
        emb = self.encoder.encode_text([a, b])
        raw = compare_phrases(self._diagnoser(LOSS_DIAGNOSER), emb[:1], emb[1:], [a], [b],
                              reference=self.reference(),
                              separation=[self._separation(a, b)]).iloc[0]
        p = float(raw["p_a_worse"])
        row: dict[str, Any] = {"phrase_a": a, "phrase_b": b, "p_a_worse": p}
        pct = self._percentiles(emb)
        row["percentile_diff"] = None if pct is None else float(np.median(pct[:, 0] - pct[:, 1]))
        row["median_diff"] = float(raw["median_diff"])
        for q in ("q0", "q1", "q2", "q3", "q4"):
            row[q] = float(raw[q])
        for key in ("measured_diff", "measured_low", "measured_high"):
            row[key] = float(raw[key]) if key in raw else None
        for key in ("n_a", "n_b"):
            row[key] = int(raw[key]) if key in raw else None
        row["verdict"] = str(raw.get("verdict", "uncertain"))
        row["reason"] = raw.get("reason") if "verdict" in raw else (
            "this audit kept no held-out samples to measure against; audit it again")
        row["uncertain"] = row["verdict"] not in (A_WORSE, B_WORSE)
        row["sentence"] = comparison_sentence(row)
        row["examples_a"] = list(raw.get("examples_a", []))
        row["examples_b"] = list(raw.get("examples_b", []))
        return row

    def default_vocabulary(self) -> tuple[list[str], list[str]]:
        """The in-domain built-in vocabularies for this audit's modality: (names, phrases)."""
        from llm2loss.vocab import default_vocabularies, is_out_of_domain, load_vocabulary

        names = [n for n in default_vocabularies(self.modality) if not is_out_of_domain(n)]
        phrases = [p for n in names for p in load_vocabulary(n)]
        return names, list(dict.fromkeys(phrases))

    def discover(self, vocabulary: list[str], top_k: int = 10) -> dict[str, Any]:
        """The vocabulary phrases with the highest estimated loss, and the least familiar ones.

        Returns {"highest_loss": [rows], "least_familiar": [rows] or None}; rows have phrase,
        mean, std, q0..q4 (raw estimated loss scores, or familiarity logits), `percentile` and
        `percentile_std` (the estimated loss among held-out samples, as in the report) and
        `familiarity`, the members' mean P(familiar) of the phrase.
        """
        from llm2loss.insights import discover

        phrases = validate_phrases(vocabulary)
        emb = self.encoder.encode_text(phrases)
        found = discover(
            self._diagnoser(LOSS_DIAGNOSER), emb, phrases, top_k,
            familiarity=self.diagnosers.get(FAMILIARITY_DIAGNOSER),
        ).to_dict()
        probability = self.familiarity(emb)
        pct = self._percentiles(emb)
        for rows in (found["highest_loss"], found["least_familiar"] or []):
            for row in rows:
                i = phrases.index(row["phrase"])
                if probability is not None:
                    row["familiarity"] = float(probability[:, i].mean())
                if pct is not None:
                    row["percentile"] = float(pct[:, i].mean())
                    row["percentile_std"] = float(pct[:, i].std())
        return found


def comparison_sentence(row: dict[str, Any]) -> str:
    """One honest sentence about a comparison row: its verdict, or 'Uncertain' and why."""
    a, b, p = row["phrase_a"], row["phrase_b"], row["p_a_worse"]
    points = row.get("percentile_diff")
    predicted = f"P(a worse) = {p:.2f}" + (
        "" if points is None else f", {points:+.1f} percentile points a - b")
    measured = ("" if row.get("measured_diff") is None else
                f"; measured loss gap a - b {row['measured_diff']:+.3f}, 90% interval "
                f"[{row['measured_low']:+.3f}, {row['measured_high']:+.3f}], "
                f"{row['n_a']} vs {row['n_b']} held-out samples")
    if row["verdict"] == A_WORSE:
        return f"The model does worse on \"{a}\" than on \"{b}\" ({predicted}{measured})."
    if row["verdict"] == B_WORSE:
        return f"The model does worse on \"{b}\" than on \"{a}\" ({predicted}{measured})."
    return (f"Uncertain whether the model does worse on \"{a}\" than on \"{b}\": "
            f"{row['reason']} ({predicted}{measured}).")
