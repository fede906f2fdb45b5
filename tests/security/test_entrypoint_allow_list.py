"""Which code a release may run is decided on the worker, not by whoever can write to the store.

A release.json written straight into the store (never registered) names `subprocess:getoutput`
with a shell command as its keyword arguments. Loading its model, and auditing it through the
flow, are refused with a ConfigError naming the setting, and the command's marker never appears.
"""

from __future__ import annotations

import pytest
from audit_harness import SPAM_SPEC, assert_one_clear_sentence, run_flow, small_settings

from llm2loss import audits
from llm2loss import pipeline as stages
from llm2loss import registry
from llm2loss.config import ReleaseSpec, StoreSettings
from llm2loss.entrypoints import ENV_VAR, is_allowed
from llm2loss.errors import ConfigError
from llm2loss.losses import load_model
from llm2loss.store import keys


def _plant(store, marker) -> None:
    store.write_json(keys.release_key("planted", "v1"), {
        "model": "planted", "version": "v1", "entrypoint": "subprocess:getoutput",
        "dataset": SPAM_SPEC.model_dump(mode="json"),
        "metadata": {"entrypoint_kwargs": {"cmd": f"touch {marker}"}},
    })


def test_prefixes_admit_a_package_and_what_lies_below_it_only():
    prefixes = ("llm2loss.example_models", "my.models")
    assert is_allowed("llm2loss.example_models", prefixes) and is_allowed("llm2loss.example_models.spam", prefixes)
    assert not is_allowed("llm2loss.zoological", prefixes) and not is_allowed("subprocess", prefixes)
    assert not is_allowed("my", prefixes) and is_allowed("my.models.x", prefixes)


def test_a_planted_release_cannot_run_a_shell_command(local_store, tmp_path):
    marker = tmp_path / "command-ran"
    _plant(local_store, marker)
    release = registry.get(local_store, "planted", "v1")  # it reads as a valid release
    with pytest.raises(ConfigError) as info:
        load_model(release, weights_path=None)
    assert_one_clear_sentence(str(info.value), "subprocess:getoutput", "not allowed", ENV_VAR)
    assert not marker.exists()


def test_a_configured_prefix_is_allowed(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "json")
    release = ReleaseSpec(model="m", version="v1", entrypoint="json:JSONDecoder",
                                   dataset=SPAM_SPEC)
    with pytest.raises(ConfigError, match="neither a torch nn.Module"):  # imported, then refused
        load_model(release, weights_path=None)


@pytest.mark.integration
def test_the_audit_flow_refuses_the_planted_release(services, tmp_path, cache_dir):
    marker = tmp_path / "command-ran"
    cfg = small_settings(StoreSettings(uri=str(tmp_path / "store")), services.scheduler_address, cache_dir)
    store = stages.get_store(cfg.store)
    _plant(store, marker)
    assert [r.ref for r in audits.unaudited(store)] == ["planted@v1"]  # the scheduler would pick it
    _, state = run_flow(cfg, "planted", "v1", expect_ok=False)
    exc = state.result(raise_on_failure=False)
    assert isinstance(exc, ConfigError) and ENV_VAR in str(exc), exc
    assert not marker.exists()
    assert audits.finished_manifest(stages.get_store(cfg.store), "planted", "v1") is None


def test_a_release_registered_before_the_example_models_were_renamed_still_imports():
    from llm2loss.entrypoints import current_ref
    from llm2loss.example_models import spam
    from llm2loss.losses import import_entrypoint

    assert import_entrypoint("llm2loss.zoo.spam:naive_bayes") is spam.naive_bayes
    assert current_ref("llm2loss.zoo:f") == "llm2loss.example_models:f"
    assert current_ref("llm2loss.zoological:f") == "llm2loss.zoological:f"  # a prefix, not a substring
    with pytest.raises(ConfigError):
        import_entrypoint("llm2loss.zoological:f")  # not renamed, so still refused
