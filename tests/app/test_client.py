"""ServiceClient against the real service: AuditQuery's answers, and the server's errors re-raised.

Also the client's own failures: a malformed URL, a closed port, and a server that is not
llm2loss (a plain stdlib HTTP server on 127.0.0.1) each raise one ConfigError saying what to fix.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from serve_helpers import MODEL, UNAUDITED

from app.client import RemoteAudit, ServiceClient, error_class, remote_audit
from llm2loss.errors import ConfigError, Llm2LossError, NotFoundError, StoreError

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]


def test_estimate_compare_discover_answer_like_audit_query(service):
    client = ServiceClient(service.url + "/")  # a trailing slash is fine
    rows = client.estimate(MODEL, "v1", ["an email written in HTML"])
    assert isinstance(rows, list) and rows[0]["phrase"] == "an email written in HTML"
    compared = client.compare(MODEL, "v1", "an email written in HTML", "a plain-text email")
    assert {"p_a_worse", "q0", "q4", "uncertain", "sentence"} <= set(compared)
    found = client.discover(MODEL, "v1", "email_topics", top_k=4)
    assert found["vocabulary"] == ["email_topics"] and len(found["highest_loss"]) == 4
    assert [a["ref"] for a in client.audits()] == [f"{MODEL}@v1", f"{MODEL}@v2"]
    assert client.health()["status"] == "ok"


def test_remote_audit_returns_audit_query_types(service):
    remote = RemoteAudit(ServiceClient(service.url), MODEL, "v1")
    table = remote.estimate(["a receipt", "a newsletter"])
    assert list(table["phrase"]) == ["a receipt", "a newsletter"] and "loss_mean" in table.columns
    names, phrases = remote.default_vocabulary()
    assert names and len(phrases) > 10
    found = remote.discover(phrases[:5], 2)
    assert set(found) == {"highest_loss", "least_familiar"} and len(found["highest_loss"]) == 2


def test_server_errors_are_reraised_as_their_class(service):
    client = ServiceClient(service.url)
    with pytest.raises(NotFoundError, match=f"llm2loss audit {MODEL}@{UNAUDITED}"):
        client.estimate(MODEL, UNAUDITED, ["a phrase"])
    with pytest.raises(NotFoundError, match="nobody"):
        client.compare("nobody", "v1", "a", "b")
    with pytest.raises(ConfigError, match="a phrase is empty"):
        client.estimate(MODEL, "v1", ["  "])
    with pytest.raises(ConfigError, match="unknown vocabulary"):
        client.discover(MODEL, "v1", "no_such_vocabulary")


def test_unsafe_names_fail_before_any_request():
    client = ServiceClient("http://127.0.0.1:9")  # nothing listens there: no request is made
    with pytest.raises(ConfigError, match="invalid model name"):
        client.estimate("../etc", "v1", ["x"])
    with pytest.raises(ConfigError, match="invalid version"):
        client.compare(MODEL, "v/1", "a", "b")


@pytest.mark.parametrize("url", ["", "127.0.0.1:8765", "ftp://127.0.0.1/", "http://", "http://h/?q=1"])
def test_malformed_server_urls(url):
    with pytest.raises(ConfigError, match="is not an http URL"):
        ServiceClient(url)


def test_store_and_server_together_are_refused():
    with pytest.raises(ConfigError, match="--store and --server both given"):
        remote_audit("http://127.0.0.1:8765", MODEL, "v1", store="./elsewhere")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_closed_port_says_to_start_the_server():
    client = ServiceClient(f"http://127.0.0.1:{_closed_port()}")
    with pytest.raises(ConfigError, match="cannot reach the llm2loss server") as caught:
        client.estimate(MODEL, "v1", ["x"])
    assert "llm2loss serve" in str(caught.value) and "LLM2LOSS_SERVER" in str(caught.value)


class _NotLlm2Loss(BaseHTTPRequestHandler):
    """Answers every request with an HTML page: 200 for /api/health, 502 for the rest."""

    def _answer(self) -> None:
        status = 200 if self.path == "/api/health" else 502
        body = b"<html><body>some other service</body></html>"
        self.send_response(status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:  # keep the test output clean
        pass


@pytest.fixture
def other_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotLlm2Loss)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_a_server_that_is_not_llm2loss_is_named(other_server):
    client = ServiceClient(other_server)
    with pytest.raises(ConfigError, match="HTTP 502 and no llm2loss JSON"):
        client.estimate(MODEL, "v1", ["x"])
    with pytest.raises(ConfigError, match="HTTP 200 and no llm2loss JSON"):
        client.health()


def test_error_class_names_only_llm2loss_errors():
    assert error_class("NotFoundError") is NotFoundError
    assert error_class("StoreError") is StoreError
    for other in ("Exception", "os", "SystemExit", None, 3):
        assert error_class(other) is Llm2LossError
