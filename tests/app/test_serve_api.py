"""The query service over real finished audits, through real HTTP on 127.0.0.1.

Answers are compared with AuditQuery's own, asked in this process on the same store: the service
adds nothing and loses nothing but NaN (null). Every failure path is asked for and must come back
as a JSON error naming the llm2loss.errors class, the problem and the fix, with its HTTP code.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
from serve_helpers import MODEL, UNAUDITED, running_service

from app.serve import MAX_BODY_BYTES, MAX_PHRASES, MAX_TOP_K
from llm2loss.jsonable import jsonable
from llm2loss.config import Settings, StoreSettings
from llm2loss.query import MAX_PHRASE_CHARS, AuditQuery

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]

PHRASES = ["an email written in HTML", "a message from a mailing list"]


def audit_path(version: str = "v1", model: str = MODEL) -> str:
    return f"/api/audits/{model}/{version}"


def post(service, path: str, body: Any, **kwargs: Any) -> httpx.Response:
    return httpx.post(service.url + path, json=body, timeout=300, **kwargs)


def get(service, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.get(service.url + path, timeout=300, **kwargs)


def assert_error(response: httpx.Response, status: int, error: str, *needles: str) -> str:
    """A JSON error {"error", "message", "status"} with this status and class, naming the needles."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["error"] == error and body["status"] == status, body
    assert "\n" not in body["message"] and "Traceback" not in body["message"]
    for needle in needles:
        assert needle in body["message"], (needle, body["message"])
    return body["message"]


def as_json(value: Any) -> Any:
    """What the service sends for an in-process answer: plain JSON, NaN as null."""
    return json.loads(json.dumps(jsonable(value), allow_nan=False))


@pytest.fixture(scope="module")
def local_query(served_store) -> AuditQuery:
    """The same audit opened in this process, to compare answers with: in torch, as the service
    answers (app.serve_audits), so the answers are equal exactly."""
    return AuditQuery(served_store.settings.store, MODEL, "v1", torch_free=False)


# --- answers --------------------------------------------------------------------------------


def test_health_and_the_finished_audits(service):
    health = get(service, "/api/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    listed = get(service, "/api/audits").json()["audits"]
    refs = [a["ref"] for a in listed]
    assert refs == [f"{MODEL}@v1", f"{MODEL}@v2"], refs  # v3 is registered, never audited
    assert all(a["completed_at"] and a["dataset"].startswith("spamassassin") for a in listed)
    assert isinstance(listed[1]["significant_regression"], bool)


def test_open_an_audit_says_what_it_holds(service):
    info = get(service, audit_path("v2")).json()
    assert info["ref"] == f"{MODEL}@v2" and info["modality"] == "text"
    assert info["diagnosers"] == ["familiarity-mlp", "rank-mlp"]
    assert f"{MODEL}@v2" in get(service, "/api/health").json()["open"]


def test_estimate_is_audit_query_estimate(service, local_query):
    response = post(service, audit_path() + "/estimate", {"phrases": PHRASES})
    assert response.status_code == 200, response.text
    rows = response.json()
    assert [r["phrase"] for r in rows] == PHRASES
    assert rows == as_json(local_query.estimate(PHRASES))
    assert {"loss_mean", "loss_std", "familiarity_mean"} <= set(rows[0])


def test_compare_is_audit_query_compare(service, local_query):
    a, b = PHRASES
    response = post(service, audit_path() + "/compare", {"a": a, "b": b})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer == as_json(local_query.compare(a, b))
    assert 0.0 <= answer["p_a_worse"] <= 1.0 and a in answer["sentence"]


def test_discover_default_named_and_listed_vocabularies(service, local_query):
    names, phrases = local_query.default_vocabulary()
    default = post(service, audit_path() + "/discover", {"top_k": 3}).json()
    assert default == as_json({"vocabulary": names, **local_query.discover(phrases, 3)})
    assert len(default["highest_loss"]) == 3
    vocabulary = get(service, audit_path() + "/vocabulary").json()
    assert vocabulary == {"vocabulary": names, "phrases": phrases}

    named = post(service, audit_path() + "/discover", {"vocabulary": "email_topics", "top_k": 2}).json()
    assert named["vocabulary"] == ["email_topics"] and len(named["highest_loss"]) == 2
    listed = post(service, audit_path() + "/discover", {"vocabulary": PHRASES, "top_k": 5}).json()
    assert listed["vocabulary"] == [] and {r["phrase"] for r in listed["highest_loss"]} == set(PHRASES)
    builtins = get(service, "/api/vocabularies").json()["vocabularies"]
    assert "email_topics" in builtins


def test_the_audit_stays_warm_between_questions(service):
    cache = service.app.state.cache
    post(service, audit_path() + "/estimate", {"phrases": ["a phishing email"]})
    first = cache.get(MODEL, "v1").query
    post(service, audit_path() + "/compare", {"a": "a newsletter", "b": "a receipt"})
    assert cache.get(MODEL, "v1").query is first  # encoder and diagnosers loaded once


def test_the_oldest_audit_is_closed_beyond_the_cache_size(served_store):
    with running_service(served_store.settings, cache_size=1) as one:
        cache = one.app.state.cache
        for version in ("v1", "v2"):
            assert post(one, audit_path(version) + "/estimate", {"phrases": ["a receipt"]}).status_code == 200
        assert cache.opened() == [f"{MODEL}@v2"]
        v2 = cache.get(MODEL, "v2").query
        post(one, audit_path("v1") + "/estimate", {"phrases": ["a receipt"]})
        assert cache.opened() == [f"{MODEL}@v1"]
        assert cache.get(MODEL, "v2").query is not v2  # reopened, from the store


def test_the_page_and_its_files_are_served_with_a_strict_policy(service):
    page = get(service, "/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="phrases"' in page.text and "/static/app.js" in page.text
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "default-src 'none'" in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    script = get(service, "/static/app.js")
    assert script.status_code == 200 and "textContent" in script.text and "innerHTML" not in script.text
    assert "content-security-policy" in get(service, "/api/health").headers


# --- errors ---------------------------------------------------------------------------------


def test_unknown_model_and_version_are_404_naming_the_known_ones(service):
    message = assert_error(post(service, audit_path("v1", "nobody") + "/estimate", {"phrases": PHRASES}),
                           404, "NotFoundError", "nobody")
    assert MODEL in message
    assert_error(get(service, audit_path("v9")), 404, "NotFoundError", "v9", "v1")


def test_unfinished_audit_is_404_saying_how_to_run_it(service):
    assert_error(post(service, audit_path(UNAUDITED) + "/compare", {"a": "x", "b": "y"}),
                 404, "NotFoundError", f"llm2loss audit {MODEL}@{UNAUDITED}")


def test_unsafe_names_are_422(service):
    assert_error(get(service, "/api/audits/..%2E/v1"), 422, "ConfigError", "invalid model name")
    assert_error(post(service, "/api/audits/spam-filter/v%201/estimate", {"phrases": PHRASES}),
                 422, "ConfigError", "invalid version")


@pytest.mark.parametrize("phrases, needle", [
    ([""], "a phrase is empty"),
    (["fine", "   "], "a phrase is empty"),
    (["x" * (MAX_PHRASE_CHARS + 1)], f"over the limit of {MAX_PHRASE_CHARS}"),
])
def test_bad_phrases_are_422(service, phrases, needle):
    assert_error(post(service, audit_path() + "/estimate", {"phrases": phrases}), 422, "ConfigError", needle)


def test_bad_compare_phrases_are_422(service):
    assert_error(post(service, audit_path() + "/compare", {"a": "html", "b": ""}), 422, "ConfigError",
                 "a phrase is empty")


@pytest.mark.parametrize("body, needle", [
    ({"phrases": "an email"}, "body.phrases"),
    ({"phrases": [5]}, "body.phrases.0"),
    ({"phrases": []}, "at least 1"),
    ({"phrases": ["a"] * (MAX_PHRASES + 1)}, f"at most {MAX_PHRASES}"),
    ({"phrase": ["a"]}, "body.phrase"),
    (None, "body"),
])
def test_malformed_estimate_bodies_are_422_with_an_example(service, body, needle):
    message = assert_error(post(service, audit_path() + "/estimate", body), 422, "ConfigError", needle)
    assert '{"phrases": [' in message


def test_a_form_post_is_not_json_and_is_refused(service):
    response = httpx.post(service.url + audit_path() + "/estimate", data={"phrases": "x"}, timeout=60)
    assert_error(response, 422, "ConfigError", "application/json")


@pytest.mark.parametrize("body, needle", [
    ({"top_k": 0}, "body.top_k"),
    ({"top_k": MAX_TOP_K + 1}, "body.top_k"),
    ({"vocabulary": "/etc/passwd"}, "unknown vocabulary '/etc/passwd'"),
    ({"vocabulary": ["a", ""]}, "a phrase is empty"),
    ({"vocabulary": []}, "the vocabulary is empty"),
    ({"vocabulary": [f"phrase {i}" for i in range(5001)]}, "over the limit of 5000"),
])
def test_bad_discover_requests_are_422(service, body, needle):
    message = assert_error(post(service, audit_path() + "/discover", body), 422, "ConfigError", needle)
    assert "root:" not in message  # a vocabulary is never read from the server's disk


def test_unknown_endpoint_and_wrong_method_are_json(service):
    assert_error(get(service, "/api/nothing"), 404, "NotFoundError", "/api/nothing", "/api/audits")
    assert_error(get(service, audit_path() + "/estimate"), 405, "ConfigError", "POST")


def test_an_oversized_body_is_413(service):
    body = json.dumps({"phrases": ["x" * 1000] * (MAX_BODY_BYTES // 1000 + 10)})
    response = httpx.post(service.url + audit_path() + "/estimate", content=body,
                          headers={"Content-Type": "application/json"}, timeout=60)
    assert_error(response, 413, "ConfigError", "over the limit")


def test_a_foreign_host_header_is_refused(service):
    response = get(service, "/api/audits", headers={"Host": "attacker.example:8765"})
    assert_error(response, 400, "ConfigError", "attacker.example", "local clients only")
    assert get(service, "/api/health", headers={"Host": "localhost:1"}).status_code == 200


def test_store_failure_is_503_without_the_secret(s3_server):
    secret = "wrong-secret-0123456789"
    store = StoreSettings(uri=f"s3://{s3_server.bucket}/served", endpoint_url=s3_server.endpoint_url)
    import os

    saved = os.environ["AWS_SECRET_ACCESS_KEY"]
    os.environ["AWS_SECRET_ACCESS_KEY"] = secret
    try:
        with running_service(Settings(store=store)) as bad:
            response = get(bad, "/api/audits")
    finally:
        os.environ["AWS_SECRET_ACCESS_KEY"] = saved
    message = assert_error(response, 503, "StoreError")
    assert secret not in message and saved not in message


def _copy_store(served_store, tmp_path: Path) -> Path:
    root = tmp_path / "store"
    shutil.copytree(served_store.uri, root)
    return root


def test_an_audit_without_its_loss_diagnoser_says_to_audit_again(served_store, tmp_path):
    root = _copy_store(served_store, tmp_path)
    shutil.rmtree(root / "audits" / MODEL / "v1" / "diagnosers" / "rank-mlp")
    with running_service(Settings(store=StoreSettings(uri=str(root)))) as broken:
        response = post(broken, audit_path() + "/estimate", {"phrases": PHRASES})
    assert_error(response, 404, "NotFoundError", "rank-mlp", "audit it again")


def test_corrupt_diagnoser_weights_are_500_weights_error(served_store, tmp_path):
    root = _copy_store(served_store, tmp_path)
    weights = root / "audits" / MODEL / "v1" / "diagnosers" / "rank-mlp" / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with running_service(Settings(store=StoreSettings(uri=str(root)))) as broken:
        response = post(broken, audit_path() + "/estimate", {"phrases": PHRASES})
        assert broken.app.state.cache.opened() == []  # nothing half-open is kept
    assert_error(response, 500, "WeightsError", "rank-mlp")


def test_an_unexpected_failure_is_500_json_naming_it(served_store, tmp_path):
    root = _copy_store(served_store, tmp_path)
    manifest_path = root / "audits" / MODEL / "v1" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    del manifest["encoder"]  # a manifest no release of llm2loss writes
    manifest_path.write_text(json.dumps(manifest))
    with running_service(Settings(store=StoreSettings(uri=str(root)))) as broken:
        response = post(broken, audit_path() + "/estimate", {"phrases": PHRASES})
        assert get(broken, "/api/health").status_code == 200  # the service keeps answering
    assert_error(response, 500, "Llm2LossError", "unexpected KeyError", "server's log")
