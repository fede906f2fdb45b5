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
    assert keys.diagnosers_prefix("spam", "v2") == "audits/spam/v2/diagnosers"
    assert keys.report_prefix("spam", "v2") == "audits/spam/v2/report"
    assert keys.report_index_key("spam", "v2") == "audits/spam/v2/report/index.html"
    assert keys.metrics_key("spam", "v2") == "audits/spam/v2/report/metrics.json"
    assert keys.regression_key("spam", "v2") == "audits/spam/v2/report/regression.json"
    assert keys.report_file_key("spam", "v2", "report.md") == "audits/spam/v2/report/report.md"
    assert keys.held_out_key("spam", "v2") == "audits/spam/v2/reference/held-out.parquet"
    assert keys.audit_lock_key("spam", "v2") == "audits/spam/v2/audit.lock"
    assert keys.registration_key("spam", "v2") == "releases/spam/v2/registration.json"
    assert keys.weights_info_key("spam", "v2") == "releases/spam/v2/weights.json"
    assert keys.audit_manifest_key("spam", "v2") == "audits/spam/v2/manifest.json"
    prefix = keys.losses_prefix("spam", "v2")
    assert keys.part_key(prefix, 3) == "audits/spam/v2/losses/part-00003.parquet"
    assert keys.sidecar_key(prefix, 3) == "audits/spam/v2/losses/part-00003.json"
    assert keys.manifest_key(prefix) == "audits/spam/v2/losses/manifest.json"
    assert keys.sharding_key(prefix) == "audits/spam/v2/losses/sharding.json"
    assert keys.unreadable_key(prefix, 3) == "audits/spam/v2/losses/failures-00003.json"


@pytest.mark.parametrize("bad", ["../../x", "a/b", "..", ".", ".hidden", "", "x" * 129, "a b"])
def test_every_name_component_is_validated(bad: str) -> None:
    for build in (
        lambda: keys.release_key("spam", bad),
        lambda: keys.release_key(bad, "v1"),
        lambda: keys.audit_prefix("spam", bad),
        lambda: keys.embeddings_prefix(bad, "fp", "enc"),
        lambda: keys.embeddings_prefix("d", bad, "enc"),
        lambda: keys.embeddings_prefix("d", "fp", bad),
        lambda: keys.report_file_key("spam", "v1", bad),
        lambda: keys.metrics_key(bad, "v1"),
        lambda: keys.diagnosers_prefix("spam", bad),
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
    for build in (keys.part_key, keys.sidecar_key, keys.unreadable_key):
        with pytest.raises(ConfigError, match="part index"):
            build("audits/spam/v1/losses", index)  # type: ignore[arg-type]


def test_release_names_are_read_back_only_from_release_files() -> None:
    assert keys.all_releases_prefix() == "releases/"
    assert keys.release_names_of(keys.release_key("spam", "v2")) == ("spam", "v2")
    for other in ("releases/spam/v2/weights.json", "releases/spam/release.json",
                  "releases/spam/v2/x/release.json", "audits/spam/v2/release.json"):
        assert keys.release_names_of(other) is None
    # the names come back as listed (untrusted): release_key refuses an unsafe one
    assert keys.release_names_of("releases/bad name/v1/release.json") == ("bad name", "v1")


@pytest.mark.parametrize("good", ["spam-filter", "v2", "a.b_c", "A" * 128, "_x"])
def test_safe_names_pass_unchanged(good: str) -> None:
    assert keys.validate_name(good, "model name") == good


@pytest.mark.parametrize("bad", [None, 3, "../x", ".v1", "a/b", "x" * 129, "é"])
def test_unsafe_names_are_refused_naming_what_and_the_fix(bad: object) -> None:
    with pytest.raises(ConfigError, match=r"invalid model name .*A-Z a-z 0-9 \. _ -"):
        keys.validate_name(bad, "model name")


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
