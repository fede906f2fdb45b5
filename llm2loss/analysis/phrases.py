"""The phrases of one audit: where each comes from, which are out of domain, one encoding of all.

A vocabulary is out-of-domain when `llm2loss.vocab.is_out_of_domain(name)`; in-domain phrases are
those of the other vocabularies plus the configured phrases, the phrases of configured pairs and
both phrases of every attribute pair. All phrases are encoded once, in one batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from llm2loss.config import AuditSettings
from llm2loss.errors import DataError
from llm2loss.vocab import is_out_of_domain

__all__ = ["Phrases", "collect_phrases", "phrase_pairs"]


@dataclass
class Phrases:
    """The phrases of one audit, their embeddings, and where each came from."""

    in_domain: list[str]
    source: dict[str, str]
    out_of_domain: dict[str, list[str]]
    embeddings: dict[str, np.ndarray]

    def matrix(self, phrases: list[str]) -> np.ndarray:
        return np.stack([self.embeddings[p] for p in phrases])


def collect_phrases(settings: AuditSettings, vocabularies: dict[str, list[str]],
                     attribute_phrases: dict[str, tuple[str, str]], text_encoder: Any) -> Phrases:
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
        return Phrases([], {}, out_of_domain, {})
    encoded = np.asarray(text_encoder.encode_text(everything), dtype=np.float32)
    return Phrases(list(source), source, out_of_domain, dict(zip(everything, encoded)))


def phrase_pairs(settings: AuditSettings, attribute_phrases: dict[str, tuple[str, str]]
                 ) -> list[tuple[str, str, str]]:
    """Every (a, b, source) pair to compare: the configured pairs, then each attribute's."""
    pairs = [(a, b, "configured") for a, b in settings.pairs]
    pairs += [(yes, no, f"attribute {name}") for name, (yes, no) in attribute_phrases.items()]
    return pairs

