"""Questions in words to a finished audit: estimate, compare, discover.

Used by the `llm2loss` command line and the `query-audit` flow alike. Diagnosers are loaded from
the store (safetensors + JSON: loading runs no code) and phrases are embedded with the audit's own
encoder, so answers live in the same space the diagnosers were trained in.

Uncertainty is the spread of the ensemble: a comparison whose members do not agree (P(a worse
than b) between 0.2 and 0.8, the report's rule) is called uncertain, never stated as a fact.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit

from llm2loss import audit, layout
from llm2loss.config import StoreSettings
from llm2loss.errors import NotFoundError
from llm2loss.phrases import MAX_PHRASE_CHARS, normalise_phrases  # noqa: F401 (re-exported)
from llm2loss.report.findings import is_uncertain

LOSS_DIAGNOSER = "rank-mlp"
FAMILIARITY_DIAGNOSER = "familiarity-mlp"


def validate_phrases(phrases: list[str]) -> list[str]:
    """The phrases normalised and validated (`llm2loss.phrases.normalise_phrase`: UTF-8, one line,
    no control characters, something visible, at most MAX_PHRASE_CHARS characters).

    An empty list passes (an audit may configure no extra phrases); callers that need at least
    one phrase require it themselves.
    """
    return normalise_phrases(list(phrases))


def completed_manifest(store_settings: StoreSettings, model: str, version: str) -> dict[str, Any]:
    """The manifest of the finished audit of `model@version`.

    Raises NotFoundError naming the known releases for an unknown one, and NotFoundError saying
    how to run it when the release exists but its audit is not finished.
    """
    manifest = audit.audit_manifest(store_settings, model, version)
    if manifest is not None:
        return manifest
    store = audit.get_store(store_settings)
    if not store.exists(layout.release_key(model, version)):
        from llm2loss import registry

        registry.get(store, model, version)  # raises NotFoundError naming the known ones
    raise NotFoundError(
        f"the audit of {model}@{version} is not finished: run `llm2loss audit {model}@{version}` "
        "first (or wait for the running one)"
    )


class AuditQuery:
    """A finished audit opened for questions: its manifest, encoder and diagnosers."""

    def __init__(self, store_settings: StoreSettings, model: str, version: str) -> None:
        self.manifest = completed_manifest(store_settings, model, version)
        self.model, self.version = model, version
        self._tmp = tempfile.TemporaryDirectory()
        self.diagnosers = audit.load_diagnosers(store_settings, model, version, Path(self._tmp.name))
        self.encoder = audit.get_encoder(self.manifest["encoder"])

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

        Columns: phrase, loss_mean, loss_std, loss_q0..loss_q4 and, when the audit trained a
        familiarity diagnoser, familiarity_mean and familiarity_std: the mean and spread over the
        members of P(the phrase looks like the audited data), in [0, 1].
        """
        from llm2loss.insights import estimate

        phrases = validate_phrases(phrases)
        emb = self.encoder.encode_text(phrases)
        loss = estimate(self._diagnoser(LOSS_DIAGNOSER), emb, phrases)
        table = loss.rename(columns={c: f"loss_{c}" for c in loss.columns if c != "phrase"})
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
        logits = self.diagnosers[FAMILIARITY_DIAGNOSER].predict_members(embeddings, modality="text")
        return expit(np.asarray(logits, dtype=np.float64))

    def compare(self, a: str, b: str) -> dict[str, Any]:
        """P(the model does worse on a than on b) over the ensemble, quartiles of the gap, a sentence.

        Keys: phrase_a, phrase_b, p_a_worse, median_diff, q0..q4 (of the members' estimated
        loss(a) - loss(b)), uncertain (bool) and sentence.
        """
        from llm2loss.insights import compare_phrases

        a, b = validate_phrases([a, b])
        emb = self.encoder.encode_text([a, b])
        raw = compare_phrases(self._diagnoser(LOSS_DIAGNOSER), emb[:1], emb[1:], [a], [b]).iloc[0]
        p = float(raw["p_higher"])
        row: dict[str, Any] = {"phrase_a": a, "phrase_b": b, "p_a_worse": p,
                               "median_diff": float(raw["median_diff"])}
        for q in ("q0", "q1", "q2", "q3", "q4"):
            row[q] = float(raw[q])
        row["uncertain"] = is_uncertain(p)
        row["sentence"] = comparison_sentence(a, b, p, (row["q1"], row["q2"], row["q3"]))
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
        mean, std, q0..q4 (estimated loss, or familiarity logits) and `familiarity`, the members'
        mean P(familiar) of the phrase.
        """
        from llm2loss.insights import discover

        phrases = validate_phrases(vocabulary)
        emb = self.encoder.encode_text(phrases)
        found = discover(
            self._diagnoser(LOSS_DIAGNOSER), emb, phrases, top_k,
            familiarity=self.diagnosers.get(FAMILIARITY_DIAGNOSER),
        ).to_dict()
        probability = self.familiarity(emb)
        if probability is not None:
            by_phrase = dict(zip(phrases, probability.mean(axis=0).tolist()))
            for rows in (found["highest_loss"], found["least_familiar"] or []):
                for row in rows:
                    row["familiarity"] = by_phrase[row["phrase"]]
        return found


def comparison_sentence(a: str, b: str, p: float, quartiles: tuple[float, float, float]) -> str:
    """One honest sentence about P(a worse than b): 'Uncertain' when the ensemble disagrees."""
    q1, q2, q3 = quartiles
    gap = f"estimated gap a - b: median {q2:+.3f}, quartiles [{q1:+.3f}, {q3:+.3f}]"
    if is_uncertain(p):
        return (f"Uncertain: the ensemble does not agree whether the model does worse on \"{a}\" "
                f"than on \"{b}\" (P = {p:.2f}; {gap}).")
    if p > 0.5:
        return f"The model is estimated to do worse on \"{a}\" than on \"{b}\" (P = {p:.2f}; {gap})."
    return (f"The model is estimated to do better on \"{a}\" than on \"{b}\" "
            f"(P(worse) = {p:.2f}; {gap}).")
