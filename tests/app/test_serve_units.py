"""The service's small pure parts: JSON encoding, host checks, binding, the cache's size rule."""

from __future__ import annotations

import json
import math
import socket

import numpy as np
import pandas as pd
import pytest

from app.serve import _host_name, bind, check_loopback
from app.serve_audits import AuditCache, finished_audits
from llm2loss import registry
from llm2loss.config import DatasetSpec, ReleaseSpec, StoreSettings
from llm2loss.jsonable import jsonable
from llm2loss.store import ArtifactStore
from llm2loss.errors import ConfigError


def test_jsonable_makes_strict_json_of_dataframes_numpy_and_nan():
    table = pd.DataFrame({"phrase": ["a", "b"], "score": [np.float32(0.5), np.nan],
                          "n": np.array([3, 4], dtype=np.int64)})
    table["examples"] = [[{"id": "x", "loss": np.float64(1.5)}], []]
    encoded = jsonable({"rows": table, "vector": np.array([1.0, np.inf]), "flag": np.bool_(True),
                     "missing": pd.NA, "nested": ({"v": float("nan")},)})
    assert encoded == {
        "rows": [{"phrase": "a", "score": 0.5, "n": 3, "examples": [{"id": "x", "loss": 1.5}]},
                 {"phrase": "b", "score": None, "n": 4, "examples": []}],
        "vector": [1.0, None], "flag": True, "missing": None, "nested": [{"v": None}],
    }
    json.dumps(encoded, allow_nan=False)  # strict JSON: raises on any NaN left
    assert not any(isinstance(v, float) and math.isnan(v) for v in encoded["vector"])


@pytest.mark.parametrize("header, host", [
    ("127.0.0.1:8765", "127.0.0.1"), ("LOCALHOST", "localhost"), ("[::1]:8765", "[::1]"),
    ("[::1]", "[::1]"), ("attacker.example:80", "attacker.example"), ("", ""),
])
def test_host_name_of_a_host_header(header, host):
    assert _host_name(header) == host


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_loopback_hosts_are_accepted(host):
    assert check_loopback(host) == host.strip("[]")


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "example.com", ""])
def test_other_hosts_are_refused_naming_the_fix(host):
    with pytest.raises(ConfigError, match="not a loopback address.*--host 127.0.0.1"):
        check_loopback(host)


def test_bind_listens_at_once_and_refuses_bad_or_taken_ports():
    sock = bind("localhost", 0)
    try:
        host, port = sock.getsockname()[:2]
        assert host == "127.0.0.1"
        with socket.create_connection((host, port), timeout=5):
            pass  # accepted into the backlog before any server loop runs
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port}"):
            bind("127.0.0.1", port)
    finally:
        sock.close()
    with pytest.raises(ConfigError, match="is not a TCP port"):
        bind("127.0.0.1", 70000)


def test_the_cache_keeps_at_least_one_audit(tmp_path):
    with pytest.raises(ConfigError, match="keep at least 1 audit open"):
        AuditCache(StoreSettings(uri=str(tmp_path)), size=0)
    cache = AuditCache(StoreSettings(uri=str(tmp_path)), size=1)
    with pytest.raises(ConfigError, match="invalid model name"):
        cache.get("../x", "v1")
    assert cache.opened() == []


def test_finished_audits_skip_a_tampered_manifest(tmp_path, caplog):
    store = ArtifactStore(str(tmp_path / "store"))
    for version, report in (("v1", "audits/toy/v1/report/index.html"), ("v2", "../../elsewhere/index.html")):
        registry.register(store, ReleaseSpec(model="toy", version=version, entrypoint="llm2loss.example_models.spam:naive_bayes",
                                              dataset=DatasetSpec(name="toy", kind="generated_text"), task="binary"))
        store.write_json(f"audits/toy/{version}/manifest.json", {
            "model": "toy", "version": version, "status": "completed", "completed_at": "2026-01-01T00:00:00",
            "report": report, "metrics": f"audits/toy/{version}/report/metrics.json"})
    with caplog.at_level("WARNING", logger="app.serve_audits"):
        rows = finished_audits(StoreSettings(uri=store.uri))
    assert [r["ref"] for r in rows] == ["toy@v1"]
    assert "skipping the audit of toy@v2" in caplog.text and "cannot be trusted" in caplog.text
