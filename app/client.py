"""A small client of `llm2loss serve`, and the AuditQuery-shaped view the CLI's `--server` uses.

`ServiceClient(base_url)` asks a running service. Its question methods return exactly what
`llm2loss.query.AuditQuery`'s methods return, JSON-decoded: `estimate` a list of row dicts (the
DataFrame's records, NaN as None), `compare` the dict, `discover` the dict plus "vocabulary" (the
names of the vocabulary used). A server error is re-raised as the llm2loss.errors class the JSON
error names, with the server's message; a server that cannot be reached, or that is not an
llm2loss service, is a ConfigError saying so.

Only the standard library and `llm2loss.errors` / `llm2loss.store.keys` are imported, so a command
that asks a server starts without torch. Proxies are not used: the service listens on loopback.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from llm2loss import errors
from llm2loss.errors import ConfigError, Llm2LossError
from llm2loss.store.keys import validate_name

SERVER_ENV = "LLM2LOSS_SERVER"
DEFAULT_TIMEOUT_S = 300.0  # the first question to an audit loads its encoder and diagnosers


def error_class(name: object) -> type[Llm2LossError]:
    """The llm2loss.errors class called `name`; Llm2LossError for any other name."""
    cls = getattr(errors, name, None) if isinstance(name, str) else None
    return cls if isinstance(cls, type) and issubclass(cls, Llm2LossError) else Llm2LossError


def check_base_url(base_url: str) -> str:
    """`base_url` without its trailing slash, if it is an http(s) URL with a host; else ConfigError."""
    url = (base_url or "").strip()
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ConfigError(f"server URL {base_url!r} is not an http URL: give one like "
                          f"http://127.0.0.1:8765 (the URL `llm2loss serve` prints), via --server or "
                          f"{SERVER_ENV}")
    return url.rstrip("/")


class ServiceClient:
    """Questions to a running `llm2loss serve` at `base_url` (e.g. http://127.0.0.1:8765)."""

    def __init__(self, base_url: str, *, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self.base_url = check_base_url(base_url)
        self.timeout = timeout
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def _audit_path(self, model: str, version: str, action: str = "") -> str:
        model, version = validate_name(model, "model name"), validate_name(version, "version")
        path = f"/api/audits/{urllib.parse.quote(model, safe='')}/{urllib.parse.quote(version, safe='')}"
        return f"{path}/{action}" if action else path

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """The decoded JSON answer of `method path`; the server's error re-raised as its class."""
        data = None if body is None else json.dumps(body).encode("utf-8")
        req = urllib.request.Request(self.base_url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json",
                                              "Accept": "application/json"})
        try:
            with self._opener.open(req, timeout=self.timeout) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ConfigError(f"cannot reach the llm2loss server at {self.base_url} ({reason}): start "
                              f"it with `llm2loss serve`, or fix or drop --server / {SERVER_ENV}") from None
        return self._decode(status, raw, f"{method} {path}")

    def _decode(self, status: int, raw: bytes, what: str) -> Any:
        try:
            answer = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            answer = None
        if status < 400 and answer is not None:
            return answer
        if isinstance(answer, dict) and isinstance(answer.get("message"), str) and "error" in answer:
            raise error_class(answer["error"])(answer["message"])
        raise ConfigError(f"{self.base_url} answered {what} with HTTP {status} and no llm2loss JSON: "
                          "is it `llm2loss serve`? Check the URL given to --server / "
                          f"{SERVER_ENV}")

    def health(self) -> dict[str, Any]:
        """{"status": "ok", "version", "open": [MODEL@VERSION, ...]}."""
        return self.request("GET", "/api/health")

    def audits(self) -> list[dict[str, Any]]:
        """The finished audits the server answers for."""
        return self.request("GET", "/api/audits")["audits"]

    def open(self, model: str, version: str) -> dict[str, Any]:
        """Warm one audit on the server; its modality, encoder and diagnosers."""
        return self.request("GET", self._audit_path(model, version))

    def default_vocabulary(self, model: str, version: str) -> tuple[list[str], list[str]]:
        """AuditQuery.default_vocabulary(): (names, phrases) of the audit's in-domain vocabulary."""
        answer = self.request("GET", self._audit_path(model, version, "vocabulary"))
        return answer["vocabulary"], answer["phrases"]

    def estimate(self, model: str, version: str, phrases: list[str]) -> list[dict[str, Any]]:
        """AuditQuery.estimate(phrases) as records."""
        return self.request("POST", self._audit_path(model, version, "estimate"), {"phrases": list(phrases)})

    def compare(self, model: str, version: str, a: str, b: str) -> dict[str, Any]:
        """AuditQuery.compare(a, b)."""
        return self.request("POST", self._audit_path(model, version, "compare"), {"a": a, "b": b})

    def discover(self, model: str, version: str, vocabulary: str | list[str] | None = None,
                 top_k: int = 10) -> dict[str, Any]:
        """AuditQuery.discover over a built-in vocabulary name, a phrase list, or (None) the default.

        The dict also names the vocabulary used under "vocabulary" ([] for a phrase list).
        """
        body = {"vocabulary": vocabulary if isinstance(vocabulary, (str, type(None))) else list(vocabulary),
                "top_k": top_k}
        return self.request("POST", self._audit_path(model, version, "discover"), body)


class RemoteAudit:
    """An audit asked through a service, with the question methods of AuditQuery (same types).

    What `llm2loss query/compare/discover --server URL` use in place of AuditQuery.
    """

    def __init__(self, client: ServiceClient, model: str, version: str) -> None:
        self.client, self.model, self.version = client, model, version

    def estimate(self, phrases: list[str]) -> Any:
        """The estimate rows as a DataFrame, as AuditQuery.estimate returns them."""
        import pandas as pd

        return pd.DataFrame(self.client.estimate(self.model, self.version, phrases))

    def compare(self, a: str, b: str) -> dict[str, Any]:
        """AuditQuery.compare(a, b)."""
        return self.client.compare(self.model, self.version, a, b)

    def default_vocabulary(self) -> tuple[list[str], list[str]]:
        """AuditQuery.default_vocabulary(): (names, phrases) of the audit's in-domain vocabulary."""
        return self.client.default_vocabulary(self.model, self.version)

    def discover(self, vocabulary: list[str], top_k: int = 10) -> dict[str, Any]:
        """AuditQuery.discover(vocabulary, top_k): {"highest_loss": ..., "least_familiar": ...}."""
        found = self.client.discover(self.model, self.version, list(vocabulary), top_k)
        found.pop("vocabulary", None)  # [] for a phrase list; the caller knows what it sent
        return found


def remote_audit(server: str, model: str, version: str, *, store: str | None = None) -> RemoteAudit:
    """The audit model@version on the server at `server`; ConfigError when --store is given too."""
    if store is not None:
        raise ConfigError("--store and --server both given: a server answers from the store it was "
                          "started with; drop --store, or drop --server (and unset "
                          f"{SERVER_ENV}) to ask in-process")
    return RemoteAudit(ServiceClient(server), model, version)
