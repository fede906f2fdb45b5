"""`llm2loss serve`: a warm local query service over finished audits, with a small web page.

One process keeps the audits it is asked about open (an LRU of `llm2loss.query.AuditQuery`, so
an audit's encoder and diagnosers load once, on its first question: `app.serve_audits`) and
answers as JSON:

  GET  /api/health                              {"status": "ok", "version": ..., "open": [...]}
  GET  /api/audits                              the finished audits of the configured store
  GET  /api/vocabularies                        the built-in vocabulary names
  GET  /api/audits/{model}/{version}            opens (warms) one audit and says what it holds
  GET  /api/audits/{model}/{version}/vocabulary the audit's default vocabulary (names, phrases)
  POST /api/audits/{model}/{version}/estimate   {"phrases": [...]}  -> AuditQuery.estimate rows
  POST /api/audits/{model}/{version}/compare    {"a": "...", "b": "..."}  -> AuditQuery.compare
  POST /api/audits/{model}/{version}/discover   {"vocabulary": null | name | [...], "top_k": 10}
  GET  /                                        the page (app/static/)

It analyses nothing itself: every answer is AuditQuery's, JSON-encoded (DataFrames as a list of
records, NaN as null). Errors are JSON objects {"error": the llm2loss.errors class, "message":
the problem and its fix, "status": the HTTP code}: 404 unknown or unfinished audit, 422 bad
input, 413 oversized body, 400 foreign Host header, 503 store failure, 500 anything else.

Everything a client sends is untrusted: phrases go through `validate_phrases`, names through
`validate_name`, a vocabulary is a built-in name or a list of phrases (never a path on this
machine), bodies are capped, and only requests naming a loopback host are answered (so a web page
that rebinds its DNS name to 127.0.0.1 cannot read answers). There is no authentication, so the
service binds loopback addresses only.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.serve_audits import DEFAULT_CACHE_SIZE, AuditCache, audit_description, discover_answer, finished_audits
import llm2loss
from llm2loss.config import Settings
from llm2loss.errors import (
    ConfigError,
    DataError,
    Llm2LossError,
    NotFittedError,
    NotFoundError,
    StoreError,
    WeightsError,
)
from llm2loss.jsonable import jsonable

STATIC = Path(__file__).resolve().parent / "static"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
# One torch thread per question: a question is one to a few phrases, too small to split, and on a
# busy machine (a 2-core box at load 10) two spinning threads made a one-phrase estimate 1.5 s
# instead of 60 ms. More threads only help long discover vocabularies on idle cores.
DEFAULT_THREADS = 1
MAX_PHRASES = 64  # per estimate request
MAX_TOP_K = 100
MAX_BODY_BYTES = 1 << 20
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]"})

# Checked in order: the first class an error is an instance of gives its HTTP status.
STATUS_OF: tuple[tuple[type[Llm2LossError], int], ...] = (
    (NotFoundError, 404),
    (ConfigError, 422),
    (DataError, 422),
    (StoreError, 503),
    (WeightsError, 500),
    (NotFittedError, 500),
)

BODY_EXAMPLES = {
    "estimate": '{"phrases": ["an email written in HTML"]}',
    "compare": '{"a": "an email written in HTML", "b": "a plain-text email"}',
    "discover": '{"vocabulary": "email_topics", "top_k": 10}',
}

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


# --- request bodies ---------------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EstimateRequest(_Body):
    """Phrases to estimate (each checked by validate_phrases)."""

    phrases: list[str] = Field(min_length=1, max_length=MAX_PHRASES)


class CompareRequest(_Body):
    """Two phrases: P(the model does worse on a than on b)."""

    a: str
    b: str


class DiscoverRequest(_Body):
    """A built-in vocabulary name, a list of phrases, or null for the audit's default vocabulary."""

    vocabulary: str | list[str] | None = None
    top_k: int = Field(10, ge=1, le=MAX_TOP_K)


# --- JSON -------------------------------------------------------------------------------------


class StrictJSONResponse(JSONResponse):
    """JSON with NaN as null (strict JSON that browsers' JSON.parse accepts)."""

    def render(self, content: Any) -> bytes:
        return json.dumps(jsonable(content), allow_nan=False, ensure_ascii=False).encode("utf-8")


def error_body(exc: Exception) -> tuple[int, dict[str, Any]]:
    """(HTTP status, {"error", "message", "status"}) of an error raised while answering."""
    if isinstance(exc, Llm2LossError):
        status = next((code for cls, code in STATUS_OF if isinstance(exc, cls)), 500)
        name, message = type(exc).__name__, " ".join(str(exc).split())
    else:
        status, name = 500, "Llm2LossError"
        message = (f"unexpected {type(exc).__name__}: {' '.join(str(exc).split())}; the server's "
                   "log has the traceback: report it with that log")
    return status, {"error": name, "message": message, "status": status}


def error_response(exc: Exception, status: int | None = None) -> StrictJSONResponse:
    """The JSON error response of `exc` (its status from STATUS_OF unless given)."""
    code, body = error_body(exc)
    if status is not None:
        code = body["status"] = status
    return StrictJSONResponse(body, status_code=code, headers=SECURITY_HEADERS)


def _validation_message(exc: RequestValidationError, path: str) -> str:
    problems = []
    for item in exc.errors():
        where = ".".join(str(p) for p in item.get("loc", ())) or "body"
        problems.append(f"{where}: {item.get('msg', 'invalid')}")
    action = path.rstrip("/").rsplit("/", 1)[-1]
    example = BODY_EXAMPLES.get(action)
    fix = f"send a JSON body like {example}" if example else "fix the request"
    return f"invalid request: {'; '.join(problems)}; {fix} (Content-Type: application/json)"


# --- the app ----------------------------------------------------------------------------------


def _host_name(header: str) -> str:
    """The host of a Host header, without its port ("[::1]" stays bracketed)."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[: header.find("]") + 1]
    return header.rsplit(":", 1)[0] if ":" in header else header


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def create_app(settings: Settings | None = None, *, cache_size: int = DEFAULT_CACHE_SIZE,
               host: str = DEFAULT_HOST) -> FastAPI:
    """The FastAPI app answering for every finished audit in `settings.store` (default: env)."""
    cfg = settings or Settings()
    cache = AuditCache(cfg.store, cache_size)
    allowed_hosts = LOOPBACK_HOSTS | {_url_host(host).lower()}
    api = FastAPI(title="llm2loss", version=llm2loss.__version__, docs_url=None, redoc_url=None,
                  openapi_url="/api/openapi.json", default_response_class=StrictJSONResponse)
    api.state.cache = cache

    @api.middleware("http")
    async def guard(request: Request, call_next: Callable[[Request], Any]) -> Response:
        host_header = request.headers.get("host", "")
        if _host_name(host_header) not in allowed_hosts:
            return error_response(ConfigError(
                f"the request names host {host_header!r}: this service answers local clients only; "
                f"open it as http://127.0.0.1:<port>/"), 400)
        length = request.headers.get("content-length", "0")
        if not length.isdigit() or int(length) > MAX_BODY_BYTES:
            return error_response(ConfigError(
                f"the request body is {length} bytes, over the limit of {MAX_BODY_BYTES}: send fewer "
                "or shorter phrases"), 413)
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    @api.exception_handler(Llm2LossError)
    async def llm2loss_error(request: Request, exc: Llm2LossError) -> Response:
        return error_response(exc)

    @api.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        return error_response(ConfigError(_validation_message(exc, request.url.path)), 422)

    @api.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return error_response(NotFoundError(
                f"no such page or endpoint: {request.method} {request.url.path}; the page is at / "
                "and the API under /api (GET /api/audits lists the audits)"), 404)
        if exc.status_code == 405:
            return error_response(ConfigError(
                f"{request.method} is not allowed on {request.url.path}: questions are POSTed, "
                "lists are fetched with GET"), 405)
        return error_response(ConfigError(f"{exc.detail}; fix the request"), exc.status_code)

    @api.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        return error_response(exc)

    @api.get("/api/health")
    def health() -> dict[str, Any]:
        """Liveness, the llm2loss version and the audits open now."""
        return {"status": "ok", "version": llm2loss.__version__, "open": cache.opened()}

    @api.get("/api/audits")
    def audits() -> dict[str, Any]:
        """The finished audits of the store."""
        return {"audits": finished_audits(cfg.store)}

    @api.get("/api/vocabularies")
    def vocabularies() -> dict[str, Any]:
        """The built-in vocabulary names discover accepts."""
        from llm2loss.vocab import available_vocabularies

        return {"vocabularies": available_vocabularies()}

    @api.get("/api/audits/{model}/{version}")
    def open_audit(model: str, version: str) -> dict[str, Any]:
        """Open (warm) one audit; its modality, encoder and diagnosers."""
        entry = cache.get(model, version)
        return audit_description(model, version, entry.query)

    @api.get("/api/audits/{model}/{version}/vocabulary")
    def default_vocabulary(model: str, version: str) -> dict[str, Any]:
        """The audit's default (in-domain, built-in) vocabulary: its names and phrases."""
        names, phrases = cache.get(model, version).query.default_vocabulary()
        return {"vocabulary": names, "phrases": phrases}

    @api.post("/api/audits/{model}/{version}/estimate")
    def estimate(model: str, version: str, body: EstimateRequest) -> Response:
        """AuditQuery.estimate(phrases), as a list of rows."""
        return StrictJSONResponse(cache.get(model, version).ask(lambda q: q.estimate(body.phrases)))

    @api.post("/api/audits/{model}/{version}/compare")
    def compare(model: str, version: str, body: CompareRequest) -> Response:
        """AuditQuery.compare(a, b)."""
        return StrictJSONResponse(cache.get(model, version).ask(lambda q: q.compare(body.a, body.b)))

    @api.post("/api/audits/{model}/{version}/discover")
    def discover(model: str, version: str, body: DiscoverRequest) -> Response:
        """AuditQuery.discover over a vocabulary, with the vocabulary's names."""
        return StrictJSONResponse(cache.get(model, version).ask(
            lambda q: discover_answer(q, body.vocabulary, body.top_k)))

    @api.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8")

    api.mount("/static", StaticFiles(directory=STATIC), name="static")
    return api


# --- running it -------------------------------------------------------------------------------


def check_loopback(host: str) -> str:
    """`host` if it is a loopback address (or "localhost"), else ConfigError: there is no auth."""
    if host == "localhost":
        return host
    try:
        loopback = ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ConfigError(f"--host {host!r} is not a loopback address: the service has no "
                          "authentication, so it listens on 127.0.0.1 or ::1 only; use --host 127.0.0.1")
    return host.strip("[]")


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (loopback only); ConfigError when the port is taken."""
    host = "127.0.0.1" if check_loopback(host) == "localhost" else check_loopback(host)
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port {port} is not a TCP port: choose one in 1-65535 (0: any free one)")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.bind((host, port))
        sock.listen(128)  # connections queue from now on, before uvicorn's loop accepts them
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror}): the port is taken, perhaps "
                          "by another `llm2loss serve`; choose another with --port") from None
    return sock


def serve(*, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, settings: Settings | None = None,
          cache_size: int = DEFAULT_CACHE_SIZE, threads: int = DEFAULT_THREADS,
          announce: Callable[[str], None] | None = None) -> None:
    """Answer on http://host:port/ until interrupted (Ctrl-C or SIGTERM).

    `threads` is torch's intra-op thread count for this process (see DEFAULT_THREADS).
    `announce` receives one line with the URL once the socket is bound (default: print it);
    with port 0 the system picks a free port and the line names it.
    """
    import torch
    import uvicorn

    from llm2loss.pipeline.workers import get_store

    if threads < 1:
        raise ConfigError(f"--threads {threads}: give at least 1 (1 is fastest for short questions)")
    cfg = settings or Settings()
    sock = bind(host, port)
    torch.set_num_threads(threads)
    bound_host, bound_port = sock.getsockname()[:2]
    application = create_app(cfg, cache_size=cache_size, host=host)
    server = uvicorn.Server(uvicorn.Config(application, log_level="warning", access_log=False,
                                           lifespan="off", server_header=False))
    line = (f"llm2loss serve: http://{_url_host(bound_host)}:{bound_port}/ answers for the audits in "
            f"{get_store(cfg.store).describe()} (Ctrl-C stops it)")
    (announce or (lambda text: print(text, flush=True)))(line)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
