"""ArtifactStore behaves the same on a local folder and on a real S3 server (SeaweedFS)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from llm2loss.errors import ConfigError, DataError, NotFoundError, StoreError
from llm2loss.store import ArtifactStore, PartInfo, embeddings_table, keys, table_to_matrix


def _table(n: int, start: int = 0) -> pa.Table:
    ids = [f"id{i}" for i in range(start, start + n)]
    return pa.table({"id": ids, "loss": np.arange(start, start + n, dtype=np.float64)})


def test_bytes_json_round_trip_and_listing(store: ArtifactStore) -> None:
    store.write_bytes("a/b/c.bin", b"\x00\x01")
    store.write_json("a/x.json", {"k": [1, 2]})
    store.write_bytes("ab/other.txt", b"z")
    assert store.read_bytes("a/b/c.bin") == b"\x00\x01"
    assert store.read_json("a/x.json") == {"k": [1, 2]}
    assert store.exists("a/x.json") and not store.exists("a/nope.json")
    assert store.list("a/") == ["a/b/c.bin", "a/x.json"]
    assert store.list("a") == ["a/b/c.bin", "a/x.json", "ab/other.txt"]
    store.delete_prefix("a/")
    assert store.list("") == ["ab/other.txt"]


def test_missing_key_is_not_found(store: ArtifactStore) -> None:
    with pytest.raises(NotFoundError, match="nope"):
        store.read_bytes("nope/x.json")


def test_invalid_json_is_a_store_error(store: ArtifactStore) -> None:
    store.write_bytes("bad.json", b"{not json")
    with pytest.raises(StoreError, match="not valid JSON"):
        store.read_json("bad.json")


def test_table_round_trip_with_part_info(store: ArtifactStore) -> None:
    table = _table(5)
    info = store.write_table("t/part.parquet", table)
    assert info.rows == 5 and info.bytes == len(store.read_bytes("t/part.parquet"))
    assert store.read_table("t/part.parquet", expect=info).equals(table)


def test_embeddings_round_trip_keeps_float32_matrix(store: ArtifactStore) -> None:
    rng = np.random.default_rng(0)
    matrix = rng.standard_normal((7, 4)).astype(np.float32)
    table = embeddings_table([f"s{i}" for i in range(7)], matrix)
    assert table.schema.field("embedding").type == pa.list_(pa.float32(), 4)
    info = store.write_table("e/part.parquet", table)
    ids, back = table_to_matrix(store.read_table("e/part.parquet", expect=info))
    assert ids == [f"s{i}" for i in range(7)]
    assert back.dtype == np.float32 and np.array_equal(back, matrix)


def test_sharded_stage_parts_sidecars_manifest(store: ArtifactStore) -> None:
    prefix = keys.losses_prefix("spam", "v1")
    infos = {i: store.write_part(prefix, i, _table(3, 3 * i)) for i in range(3)}
    assert store.done_parts(prefix) == infos
    assert store.read_stage_manifest(prefix) is None  # not trusted before the manifest
    store.write_stage_manifest(prefix, infos, {"stage": "losses"})
    manifest = store.read_stage_manifest(prefix)
    assert manifest is not None and manifest["rows"] == 9 and manifest["stage"] == "losses"
    table = store.read_stage_table(prefix)
    assert table.column("id").to_pylist() == [f"id{i}" for i in range(9)]


def test_part_without_sidecar_is_not_done(store: ArtifactStore) -> None:
    prefix = keys.losses_prefix("spam", "v1")
    store.write_table(keys.part_key(prefix, 0), _table(2))  # crashed before its sidecar
    store.write_part(prefix, 1, _table(2))
    assert list(store.done_parts(prefix)) == [1]


def test_corrupted_part_is_detected_by_checksum(store: ArtifactStore) -> None:
    prefix = keys.losses_prefix("spam", "v1")
    infos = {i: store.write_part(prefix, i, _table(4, 4 * i)) for i in range(2)}
    store.write_stage_manifest(prefix, infos)
    data = bytearray(store.read_bytes(infos[1].key))
    data[len(data) // 2] ^= 0xFF
    store.write_bytes(infos[1].key, bytes(data))
    assert not store.verify_part(infos[1]) and store.verify_part(infos[0])
    assert list(store.done_parts(prefix, verify=True)) == [0]
    with pytest.raises(StoreError, match="corrupt"):
        store.read_stage_table(prefix)


def test_deleted_part_is_detected(store: ArtifactStore) -> None:
    prefix = keys.losses_prefix("spam", "v1")
    infos = {i: store.write_part(prefix, i, _table(2, 2 * i)) for i in range(2)}
    store.write_stage_manifest(prefix, infos)
    store.delete_prefix(infos[0].key)
    assert list(store.done_parts(prefix)) == [1]
    assert store.read_stage_manifest(prefix) is None
    with pytest.raises(NotFoundError, match="no complete stage"):
        store.read_stage_table(prefix)


def test_read_table_with_wrong_rows_is_refused(store: ArtifactStore) -> None:
    info = store.write_table("t/p.parquet", _table(3))
    lying = PartInfo(**{**info.model_dump(), "rows": 4})
    with pytest.raises(StoreError, match="3 rows != 4"):
        store.read_table("t/p.parquet", expect=lying)


def test_empty_manifest_is_refused(store: ArtifactStore) -> None:
    with pytest.raises(DataError, match="no parts"):
        store.write_stage_manifest("x", {})


def test_upload_download_dirs(store: ArtifactStore, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.json").write_text("{}")
    (src / "sub" / "w.safetensors").write_bytes(b"w" * 10)
    keys = store.upload_dir(src, "diag/rank-mlp")
    assert keys == ["diag/rank-mlp/a.json", "diag/rank-mlp/sub/w.safetensors"]
    out = store.download_dir("diag/rank-mlp", tmp_path / "out")
    assert (out / "sub" / "w.safetensors").read_bytes() == b"w" * 10
    with pytest.raises(NotFoundError, match="nothing under"):
        store.download_dir("diag/none", tmp_path / "x")
    with pytest.raises(NotFoundError, match="no such file"):
        store.upload(tmp_path / "missing.bin", "k")


@pytest.mark.parametrize("key", ["../x", "a/../../x", "/abs", "a//b", "a/./b", "a\\b"])
def test_unsafe_keys_are_refused(store: ArtifactStore, key: str) -> None:
    with pytest.raises(ConfigError, match="invalid store key"):
        store.write_bytes(key, b"x")


def test_lock_is_exclusive_until_released(store: ArtifactStore) -> None:
    key = keys.audit_lock_key("spam", "v1")
    assert store.acquire_lock(key, "audit-a", ttl_s=60)
    assert not store.acquire_lock(key, "audit-b", ttl_s=60)
    first = store.read_json(key)["expires_at"]
    assert store.acquire_lock(key, "audit-a", ttl_s=600)  # re-entrant: extends the expiry
    assert store.read_json(key)["expires_at"] > first + 500
    assert not store.release_lock(key, "audit-b")
    assert store.release_lock(key, "audit-a")
    assert store.acquire_lock(key, "audit-b", ttl_s=60)


def test_expired_lock_is_taken_over(store: ArtifactStore) -> None:
    key = keys.audit_lock_key("spam", "v1")
    store.write_json(key, {"owner": "dead-audit", "expires_at": 0})
    assert store.acquire_lock(key, "audit-b", ttl_s=60)
    assert store.read_json(key)["owner"] == "audit-b"
    assert not store.acquire_lock(key, "audit-c", ttl_s=60)


def test_lock_ttl_must_be_positive(store: ArtifactStore) -> None:
    with pytest.raises(ConfigError, match="ttl_s"):
        store.acquire_lock("l.lock", "me", ttl_s=0)


def test_concurrent_lock_attempts_have_one_winner(store: ArtifactStore) -> None:
    from concurrent.futures import ThreadPoolExecutor

    # Many rounds: a lock visible before its owner wrote it let a second caller win now and then.
    for round_ in range(40 if store.is_local else 3):
        key = keys.audit_lock_key("spam", f"v{round_}")
        with ThreadPoolExecutor(8) as pool:
            wins = list(pool.map(lambda i: store.acquire_lock(key, f"audit-{i}", ttl_s=60), range(8)))
        assert sum(wins) == 1, f"round {round_}: {sum(wins)} winners"


@pytest.mark.parametrize(
    "uri",
    ["http://host/x", "gs://bucket/x", "", "s3://", "s3://k:s@bucket/x", "s3://Bad_Bucket!/x"],
)
def test_bad_uri_names_the_two_forms(uri: str) -> None:
    with pytest.raises(ConfigError, match="s3://bucket/prefix"):
        ArtifactStore(uri)


def test_from_settings_and_repr_hide_nothing_secret(s3_server, monkeypatch) -> None:
    from llm2loss.config import StoreSettings

    store = ArtifactStore.from_settings(
        StoreSettings(uri=f"s3://{s3_server.bucket}/p", endpoint_url=s3_server.endpoint_url)
    )
    store.write_bytes("k", b"v")
    assert store.uri == f"s3://{s3_server.bucket}/p"
    for text in (repr(store), store.describe(), store.uri):
        assert s3_server.secret_key not in text and s3_server.access_key not in text
    local = ArtifactStore.from_settings(StoreSettings(uri="rel-store"))
    assert local.is_local and Path(local.uri).is_absolute()


def test_wrong_credentials_give_one_clear_line(s3_server, monkeypatch) -> None:
    wrong_secret = "definitely-wrong-secret-987"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", wrong_secret)
    store = ArtifactStore(f"s3://{s3_server.bucket}/x", endpoint_url=s3_server.endpoint_url)
    with pytest.raises(StoreError) as info:
        store.write_bytes("k", b"v")
    message = str(info.value)
    assert "refused the credentials" in message and "AWS_SECRET_ACCESS_KEY" in message
    assert "\n" not in message and wrong_secret not in message


def test_unreachable_endpoint_fails_fast_and_clearly() -> None:
    import time

    from infra.processes import free_port

    store = ArtifactStore(
        "s3://unreachable-bucket/x",
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        max_attempts=2,
        connect_timeout=1,
    )
    start = time.monotonic()
    with pytest.raises(StoreError, match="cannot reach the S3 endpoint"):
        store.read_bytes("k")
    assert time.monotonic() - start < 10


def test_missing_bucket_is_named(s3_server) -> None:
    store = ArtifactStore("s3://no-such-bucket-llm2loss/x", endpoint_url=s3_server.endpoint_url)
    with pytest.raises(StoreError, match="no-such-bucket-llm2loss"):
        store.list("")


def test_unsafe_names_write_nothing_outside_the_prefix(s3_store, s3_server) -> None:
    import boto3

    from llm2loss.config import DatasetSpec, ReleaseSpec
    from llm2loss.registry import register

    client = boto3.client("s3", endpoint_url=s3_server.endpoint_url, region_name="us-east-1")
    before = {o["Key"] for o in client.list_objects_v2(Bucket=s3_server.bucket).get("Contents", [])}
    for bad in ("../../x", "a/b", "..", ".hidden"):
        with pytest.raises(ConfigError, match="version"):
            keys.release_key("spam", bad)
        with pytest.raises(ValueError, match="invalid version"):
            ReleaseSpec(
                model="spam",
                version=bad,
                entrypoint="m:f",
                dataset=DatasetSpec(name="d", kind="generated_text"),
            )
        # Even a spec that skipped validation cannot become a key outside the prefix.
        unchecked = ReleaseSpec.model_construct(
            model="spam",
            version=bad,
            entrypoint="m:f",
            dataset=DatasetSpec(name="d", kind="generated_text"),
        )
        with pytest.raises(ConfigError, match="invalid version"):
            register(s3_store, unchecked)
        with pytest.raises(ConfigError, match="invalid dataset name"):
            keys.embeddings_prefix(bad, "fp", "enc")
    register(
        s3_store,
        ReleaseSpec(
            model="spam",
            version="v1",
            entrypoint="m:f",
            dataset=DatasetSpec(name="d", kind="generated_text"),
        ),
    )
    after = {o["Key"] for o in client.list_objects_v2(Bucket=s3_server.bucket).get("Contents", [])}
    prefix = s3_store.uri.split("/", 3)[3] + "/"
    assert after - before and all(k.startswith(prefix) for k in after - before)


def test_local_writes_leave_no_temp_files(local_store: ArtifactStore) -> None:
    local_store.write_table("t/p.parquet", _table(2))
    local_store.write_bytes("t/b", b"x")
    files = sorted(p.name for p in Path(local_store.uri).rglob("*") if p.is_file())
    assert files == ["b", "p.parquet"]
    assert json.loads(json.dumps(local_store.list(""))) == ["t/b", "t/p.parquet"]


def test_large_table_goes_through_multipart_upload(store: ArtifactStore) -> None:
    rng = np.random.default_rng(1)
    matrix = rng.standard_normal((6000, 400)).astype(np.float32)  # ~9.6 MB: S3 multipart
    info = store.write_table(
        "big/part.parquet", embeddings_table([str(i) for i in range(6000)], matrix)
    )
    assert info.bytes > 8 * 1024 * 1024
    _, back = table_to_matrix(store.read_table("big/part.parquet", expect=info))
    assert np.array_equal(back, matrix)


def test_missing_credentials_say_where_to_set_them(
    s3_server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    store = ArtifactStore(f"s3://{s3_server.bucket}/x", endpoint_url=s3_server.endpoint_url)
    with pytest.raises(StoreError, match="no S3 credentials found.*AWS_ACCESS_KEY_ID"):
        store.read_bytes("k")
