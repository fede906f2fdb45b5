"""The audits a running `llm2loss serve` holds open, and the answers it builds from them.

`AuditCache` keeps up to `size` finished audits open (`llm2loss.query.AuditQuery` in torch,
which is faster than the numpy path once loaded; least recently used closed first), each with a lock so one question at a time uses its encoder; an audit that
cannot be opened is not remembered. `finished_audits`, `audit_description` and `discover_answer`
are the service's answers about the store, an open audit and a discover request (the HTTP side
is `app.serve`).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from llm2loss.config import StoreSettings
from llm2loss.errors import ConfigError, StoreError
from llm2loss.store.keys import validate_name

DEFAULT_CACHE_SIZE = 4
WARM_UP_PHRASE = "a sample"
MAX_VOCABULARY = 5000  # phrases per discover request
log = logging.getLogger(__name__)


@dataclass
class OpenAudit:
    """One warm AuditQuery and the lock that keeps its encoder to one question at a time."""

    query: Any
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ask(self, question: Callable[[Any], Any]) -> Any:
        """`question(query)` under this audit's lock."""
        with self.lock:
            return question(self.query)


class AuditCache:
    """The audits opened so far, least recently used first; at most `size` stay open.

    An audit that cannot be opened (unknown, unfinished) is not remembered, so an audit that
    finishes while the service runs is answered on the next request.
    """

    def __init__(self, store: StoreSettings, size: int = DEFAULT_CACHE_SIZE) -> None:
        if size < 1:
            raise ConfigError(f"the audit cache size is {size}: keep at least 1 audit open")
        self.store, self.size = store, size
        self._open: OrderedDict[tuple[str, str], OpenAudit] = OrderedDict()
        self._lock = threading.Lock()  # guards _open
        self._loading = threading.Lock()  # one audit loads at a time (each load is CPU-bound)

    def opened(self) -> list[str]:
        """MODEL@VERSION of each open audit, least recently used first."""
        with self._lock:
            return [f"{m}@{v}" for m, v in self._open]

    def _lookup(self, key: tuple[str, str]) -> OpenAudit | None:
        with self._lock:
            entry = self._open.get(key)
            if entry is not None:
                self._open.move_to_end(key)
            return entry

    def get(self, model: str, version: str) -> OpenAudit:
        """The open audit of model@version, opening it (and closing the oldest) when needed."""
        key = (validate_name(model, "model name"), validate_name(version, "version"))
        entry = self._lookup(key)
        if entry is not None:
            return entry
        with self._loading:
            entry = self._lookup(key)  # opened by the request this one waited for
            if entry is not None:
                return entry
            from llm2loss.query import AuditQuery

            # torch, not the cold CLI's numpy path: this process stays warm, so torch's import is
            # paid once, and warm torch is faster (one thread each, same moment, load ~10: one
            # phrase 20 vs 31 ms to embed, 50 phrases 421 vs 847 ms).
            query = AuditQuery(self.store, *key, torch_free=False)
            # One question at opening reads what AuditQuery loads lazily (held-out samples,
            # score quantiles) and runs the encoder once, so the first real question is warm too.
            query.estimate([WARM_UP_PHRASE])
            entry = OpenAudit(query)
            with self._lock:
                self._open[key] = entry
                while len(self._open) > self.size:
                    self._open.popitem(last=False)
        return entry


def finished_audits(store: StoreSettings) -> list[dict[str, Any]]:
    """Every release with a completed audit, as `llm2loss audits` lists them (plus dataset, task);
    a manifest that cannot be trusted is skipped with a logged warning, as there."""
    from llm2loss import audits, registry
    from llm2loss.pipeline.workers import get_store

    rows = []
    artifacts = get_store(store)
    for release in registry.list_releases(artifacts):
        try:
            manifest = audits.finished_manifest(artifacts, release.model, release.version)
        except (StoreError, ConfigError) as exc:  # one tampered manifest must not hide the rest
            log.warning("skipping the audit of %s: %s", release.ref, exc)
            continue
        if manifest is not None:
            rows.append({
                "model": release.model, "version": release.version, "ref": release.ref,
                "dataset": release.dataset.name, "task": release.task,
                "completed_at": manifest.get("completed_at"),
                "significant_regression": bool(manifest.get("significant_regression", False)),
            })
    return rows


def audit_description(model: str, version: str, query: Any) -> dict[str, Any]:
    """What an open audit holds: its modality, encoder and diagnosers (for the page)."""
    manifest = query.manifest
    return {
        "model": model, "version": version, "ref": f"{model}@{version}",
        "completed_at": manifest.get("completed_at"),
        "significant_regression": bool(manifest.get("significant_regression", False)),
        "modality": query.modality, "encoder": manifest.get("encoder"),
        "diagnosers": sorted(query.diagnosers),
    }


def discover_answer(query: Any, vocabulary: str | list[str] | None, top_k: int) -> dict[str, Any]:
    """{"vocabulary": names, **AuditQuery.discover(...)} for a name, a phrase list or the default."""
    from llm2loss.vocab import available_vocabularies, load_vocabulary

    if vocabulary is None:
        names, phrases = query.default_vocabulary()
    elif isinstance(vocabulary, str):
        known = available_vocabularies()
        if vocabulary not in known:  # a name only: never a path on the server's disk
            raise ConfigError(f"unknown vocabulary {vocabulary!r}: choose one of {known}, or send "
                              "the phrases themselves as a list")
        names, phrases = [vocabulary], load_vocabulary(vocabulary)
    else:
        if len(vocabulary) > MAX_VOCABULARY:
            raise ConfigError(f"the vocabulary has {len(vocabulary)} phrases, over the limit of "
                              f"{MAX_VOCABULARY}: send fewer phrases")
        names, phrases = [], list(dict.fromkeys(vocabulary))
    if not phrases:
        raise ConfigError("the vocabulary is empty: send at least one phrase or a built-in name")
    return {"vocabulary": names, **query.discover(phrases, top_k)}
