"""Typed specs: datasets, model releases, diagnosers, audits, the store and the Dask cluster.

Configuration is data (pydantic models). `Settings` reads the environment (prefix `LLM2LOSS_`,
nested fields with `__`, e.g. `LLM2LOSS_STORE__URI=s3://bucket/prefix`), so the same code runs on
a laptop and on a team's cluster by configuration alone. Credentials are never part of any spec:
they come from the environment or the AWS credential chain.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from llm2loss.store.keys import validate_name

Objective = Literal["rank", "regress", "familiarity"]
Arch = Literal["linear", "mlp"]
Task = Literal["multiclass", "binary", "regression", "custom"]
DatasetKind = Literal[
    "spamassassin", "text_table", "image_folder", "image_manifest", "torchvision", "generated_text"
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatasetSpec(_Strict):
    """Where a dataset comes from and how to read it."""

    name: str
    kind: DatasetKind
    path: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    limit: int | None = Field(default=None, ge=1)
    attribute_phrases: dict[str, tuple[str, str]] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return validate_name(v, "dataset name")


class ReleaseSpec(_Strict):
    """One released version of an audited model: the content of release.json."""

    model: str
    version: str
    entrypoint: str
    weights: str | None = None
    dataset: DatasetSpec
    task: Task = "multiclass"
    loss: str | None = None
    classes: list[str] | None = None
    encoder: str | None = None
    created_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("model")
    @classmethod
    def _model(cls, v: str) -> str:
        return validate_name(v, "model name")

    @field_validator("version")
    @classmethod
    def _version(cls, v: str) -> str:
        return validate_name(v, "version")

    @field_validator("entrypoint", "loss")
    @classmethod
    def _entrypoint(cls, v: str | None) -> str | None:
        if v is None:
            return v
        module, sep, func = v.partition(":")
        if not sep or not module or not func.isidentifier():
            raise ValueError(
                f"entrypoint {v!r} must look like 'package.module:function', "
                "e.g. 'llm2loss.example_models.spam:naive_bayes'"
            )
        return v

    @property
    def ref(self) -> str:
        """`model@version`, the way users name a release."""
        return f"{self.model}@{self.version}"


class DiagnoserSettings(_Strict):
    """Which diagnosers an audit trains."""

    objectives: list[Objective] = ["rank", "regress", "familiarity"]
    archs: list[Arch] = ["linear", "mlp"]
    n_members: int = Field(default=5, le=64)
    random_state: int = 0
    #: Cap on each fit's epochs; early stopping on a validation slice usually ends it first (the
    #: text fits of SpamAssassin v1/v2, planted slices and BBC News, and the synthetic tuning sets
    #: of benchmarks/tune_core.py, stop before 60; the image benchmark's rank-mlp heads at
    #: 143-265 on its three audit sets, its linear heads run to the cap). A lower cap stops small sets (a few steps an
    #: epoch) with their validation score still rising; it was 60 while phrases were read by the
    #: heads themselves, whose close attribute signs the longer fits turned
    #: (`llm2loss.diagnoser.readout`, benchmarks/RESULTS.md `## Image`).
    max_epochs: int = Field(default=300, ge=1)

    @field_validator("n_members")
    @classmethod
    def _members(cls, v: int) -> int:
        if v < 2:
            raise ValueError(
                f"an audit needs n_members >= 2 (got {v}): one member can never show how "
                "uncertain an estimate is; use 5 (the default) or at least 2"
            )
        return v


class AuditSettings(_Strict):
    """How an audit splits, shards and questions the data."""

    shard_size: int = Field(default=1000, ge=1)
    test_fraction: float = Field(default=0.3, gt=0.0, lt=1.0)
    seed: int = 0
    diagnosers: DiagnoserSettings = Field(default_factory=DiagnoserSettings)
    phrases: list[str] = Field(default_factory=list)
    pairs: list[tuple[str, str]] = Field(default_factory=list)
    vocabularies: list[str] = Field(default_factory=list)


class StoreSettings(_Strict):
    """Where artifacts live: a local folder (default) or s3://bucket/prefix."""

    uri: str = "./llm2loss-store"
    endpoint_url: str | None = None
    region: str | None = None


class DaskSettings(_Strict):
    """The Dask cluster the shard tasks run on."""

    address: str | None = None
    n_workers: int = Field(default=2, ge=1)
    threads_per_worker: int = Field(default=1, ge=1)
    gpu: bool = False


class Settings(BaseSettings):
    """All configuration, read from the environment (LLM2LOSS_*, nested with '__')."""

    model_config = SettingsConfigDict(env_prefix="LLM2LOSS_", env_nested_delimiter="__")

    store: StoreSettings = Field(default_factory=StoreSettings)
    dask: DaskSettings = Field(default_factory=DaskSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    cache_dir: str = "~/.cache/llm2loss"
