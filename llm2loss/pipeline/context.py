"""`AuditContext`: what every stage of one audit needs to know, in one small picklable value.

It holds the store's settings, the release, the cache folder and (once planned) the plan, never
the heavy objects: `ctx.store` and `ctx.source` are asked of the per-process caches
(`llm2loss.pipeline.workers`), so a context shipped to a Dask worker rebuilds them there once.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from llm2loss.config import ReleaseSpec, Settings, StoreSettings
from llm2loss.errors import ConfigError
from llm2loss.pipeline.plan import AuditPlan
from llm2loss.pipeline.workers import get_source, get_store
from llm2loss.store import ArtifactStore


class AuditContext(BaseModel):
    """One audit of one release: store settings, release, cache folder and, once made, its plan.

    `cache_dir` is where datasets and weights are fetched to; None only for stages that read
    nothing but the store (the analysis of stages written elsewhere then shows no previews).
    """

    model_config = ConfigDict(frozen=True)

    store_settings: StoreSettings
    release: ReleaseSpec
    cache_dir: str | None = None
    plan: AuditPlan | None = None

    @classmethod
    def of(cls, cfg: Settings, release: ReleaseSpec) -> AuditContext:
        """The context of auditing `release` with these settings (not planned yet)."""
        return cls(store_settings=cfg.store, release=release, cache_dir=cfg.cache_dir)

    def with_plan(self, plan: AuditPlan) -> AuditContext:
        """This context with its plan."""
        return self.model_copy(update={"plan": plan})

    @property
    def store(self) -> ArtifactStore:
        """The artifact store (built once per process)."""
        return get_store(self.store_settings)

    @property
    def planned(self) -> AuditPlan:
        """The plan; an error when the audit was not planned yet (a bug of the caller)."""
        if self.plan is None:
            raise ConfigError(f"the audit of {self.release.ref} has no plan yet: call plan_audit first")
        return self.plan

    def require_cache_dir(self) -> str:
        """The cache folder; ConfigError when this context has none."""
        if self.cache_dir is None:
            raise ConfigError(f"the audit of {self.release.ref} needs a cache_dir to read its dataset "
                              "and weights: set LLM2LOSS_CACHE_DIR (or Settings.cache_dir)")
        return self.cache_dir

    @property
    def source(self) -> Any:
        """The release's dataset source (built once per process)."""
        return get_source(self.release.dataset, self.require_cache_dir())
