"""Store keys follow DESIGN.md and every name is validated before it becomes part of a key."""

from __future__ import annotations

import pytest

from llm2loss.errors import ConfigError
from llm2loss.store import keys


def test_keys_follow_the_design() -> None:
    assert keys.embeddings_prefix("celeba", "fp1", "clip-b32") == (
        "datasets/celeba/fp1/embeddings/clip-b32"
    )
    assert keys.release_key("spam", "v2") == "releases/spam/v2/release.json"
    assert (
        keys.weights_key("spam", "v2", ".safetensors") == "releases/spam/v2/weights.safetensors"
    )
    assert keys.losses_prefix("spam", "v2") == "audits/spam/v2/losses"
    assert (
        keys.diagnoser_prefix("spam", "v2", "rank", "mlp") == "audits/spam/v2/diagnosers/rank-mlp"
    )
    assert keys.report_prefix("spam", "v2") == "audits/spam/v2/report"
    assert keys.audit_manifest_key("spam", "v2") == "audits/spam/v2/manifest.json"
    prefix = keys.losses_prefix("spam", "v2")
    assert keys.part_key(prefix, 3) == "audits/spam/v2/losses/part-00003.parquet"
    assert keys.sidecar_key(prefix, 3) == "audits/spam/v2/losses/part-00003.json"
    assert keys.manifest_key(prefix) == "audits/spam/v2/losses/manifest.json"


@pytest.mark.parametrize("bad", ["../../x", "a/b", "..", ".", ".hidden", "", "x" * 129, "a b"])
def test_every_name_component_is_validated(bad: str) -> None:
    for build in (
        lambda: keys.release_key("spam", bad),
        lambda: keys.release_key(bad, "v1"),
        lambda: keys.audit_prefix("spam", bad),
        lambda: keys.embeddings_prefix(bad, "fp", "enc"),
        lambda: keys.embeddings_prefix("d", bad, "enc"),
        lambda: keys.embeddings_prefix("d", "fp", bad),
    ):
        with pytest.raises(ConfigError, match="invalid"):
            build()


def test_unknown_objective_or_arch_names_the_choices() -> None:
    with pytest.raises(ConfigError, match="rank, regress, familiarity"):
        keys.diagnoser_prefix("spam", "v1", "ranking", "mlp")
    with pytest.raises(ConfigError, match="linear, mlp"):
        keys.diagnoser_prefix("spam", "v1", "rank", "cnn")


def test_weights_extension_must_be_safe() -> None:
    with pytest.raises(ConfigError, match=".safetensors"):
        keys.weights_key("spam", "v1", ".pkl")


@pytest.mark.parametrize("index", [-1, 100_000, 1.0, True, "3"])
def test_part_index_must_be_a_small_int(index: object) -> None:
    with pytest.raises(ConfigError, match="part index"):
        keys.part_key("audits/spam/v1/losses", index)  # type: ignore[arg-type]


def test_part_index_parses_only_part_keys() -> None:
    assert keys.part_index("a/b/part-00042.json") == 42
    assert keys.part_index("a/b/part-00042.parquet") == 42
    assert keys.part_index("a/b/manifest.json") is None
    assert keys.part_index("a/b/part-42.json") is None
    assert keys.part_index("a/b/part-00042.csv") is None


@pytest.mark.parametrize("key", ["", "/a", "a/../b", "a//b", "a\\b", "./a"])
def test_check_key_refuses_unclean_keys(key: str) -> None:
    with pytest.raises(ConfigError, match="invalid store key"):
        keys.check_key(key)
