"""Questions in words to a finished audit: estimate, compare, discover.

Used by the `llm2loss` command line and the `query-audit` flow alike. Diagnosers are loaded from
the store (safetensors + JSON: loading runs no code) and phrases are embedded with the audit's own
encoder, so answers live in the same space the diagnosers were trained in.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from llm2loss import audit, layout
from llm2loss.config import StoreSettings
from llm2loss.errors import ConfigError, NotFoundError

MAX_PHRASE_CHARS = 300
LOSS_DIAGNOSER = "rank-mlp"
FAMILIARITY_DIAGNOSER = "familiarity-mlp"


def validate_phrases(phrases: list[str]) -> list[str]:
    """Phrases must be non-empty and at most MAX_PHRASE_CHARS characters; returns them stripped."""
    cleaned = []
    for phrase in phrases:
        text = phrase.strip() if isinstance(phrase, str) else ""
        if not text:
            raise ConfigError("a phrase is empty: give each phrase some words, e.g. \"an email about a mortgage\"")
        if len(text) > MAX_PHRASE_CHARS:
            raise ConfigError(
                f"a phrase has {len(text)} characters, over the limit of {MAX_PHRASE_CHARS}: "
                "shorten it to a description of a concept, not a document"
            )
        cleaned.append(text)
    return cleaned


class AuditQuery:
    """A finished audit opened for questions: its manifest, encoder and diagnosers."""

    def __init__(self, store_settings: StoreSettings, model: str, version: str) -> None:
        self.manifest = audit.audit_manifest(store_settings, model, version)
        if self.manifest is None:
            store = audit.get_store(store_settings)
            if not store.exists(layout.release_key(model, version)):
                from llm2loss import registry

                registry.get(store, model, version)  # raises NotFoundError naming the known ones
            raise NotFoundError(
                f"the audit of {model}@{version} is not finished: run `llm2loss audit {model}@{version}` first"
            )
        self.model, self.version = model, version
        self._tmp = tempfile.TemporaryDirectory()
        self.diagnosers = audit.load_diagnosers(store_settings, model, version, Path(self._tmp.name))
        self.encoder = audit.get_encoder(self.manifest["encoder"])

    def _diagnoser(self, name: str) -> Any:
        if name not in self.diagnosers:
            raise NotFoundError(
                f"the audit of {self.model}@{self.version} has no diagnoser {name!r}; "
                f"it has {sorted(self.diagnosers)}"
            )
        return self.diagnosers[name]

    def estimate(self, phrases: list[str]) -> pd.DataFrame:
        """Estimated loss (rank diagnoser) and familiarity of each phrase, with uncertainty."""
        from llm2loss.insights import estimate

        phrases = validate_phrases(phrases)
        emb = self.encoder.encode_text(phrases)
        loss = estimate(self._diagnoser(LOSS_DIAGNOSER), emb, phrases)
        table = loss.rename(columns={c: f"loss_{c}" for c in loss.columns if c != "phrase"})
        if FAMILIARITY_DIAGNOSER in self.diagnosers:
            fam = estimate(self.diagnosers[FAMILIARITY_DIAGNOSER], emb, phrases)
            table["familiarity_mean"] = fam["mean"].to_numpy()
            table["familiarity_std"] = fam["std"].to_numpy()
        return table

    def compare(self, a: str, b: str) -> dict[str, Any]:
        """P(a has a higher estimated loss than b) over the ensemble, with quartiles of the gap."""
        from llm2loss.insights import compare_phrases

        a, b = validate_phrases([a, b])
        emb = self.encoder.encode_text([a, b])
        row = compare_phrases(self._diagnoser(LOSS_DIAGNOSER), emb[:1], emb[1:], [a], [b]).iloc[0].to_dict()
        row["sentence"] = comparison_sentence(a, b, float(row["p_higher"]))
        return row

    def discover(self, vocabulary: list[str], top_k: int = 10) -> dict[str, Any]:
        """The vocabulary phrases with the highest estimated loss, and the least familiar ones."""
        from llm2loss.insights import discover

        phrases = validate_phrases(vocabulary)
        emb = self.encoder.encode_text(phrases)
        return discover(
            self._diagnoser(LOSS_DIAGNOSER), emb, phrases, top_k,
            familiarity=self.diagnosers.get(FAMILIARITY_DIAGNOSER),
        )


def comparison_sentence(a: str, b: str, p: float) -> str:
    """One honest sentence about P(a worse than b): uncertain when the ensemble disagrees."""
    if p >= 0.8:
        return f"The model is estimated to do worse on \"{a}\" than on \"{b}\" (P = {p:.2f})."
    if p <= 0.2:
        return f"The model is estimated to do better on \"{a}\" than on \"{b}\" (P(worse) = {p:.2f})."
    return f"Uncertain: the ensemble does not agree whether \"{a}\" is worse than \"{b}\" (P = {p:.2f})."
