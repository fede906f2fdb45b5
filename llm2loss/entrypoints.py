"""Which release entrypoints this process may import: an allow-list kept on the worker.

A release names the code that builds its model (`entrypoint`, and for task "custom" a `loss`),
and auditing it imports and calls that code. Anyone who can write to the store can write a
release.json, so the store must not decide what runs: the process that would import the code
does, from its own environment. `LLM2LOSS_ALLOW_ENTRYPOINTS` (comma-separated module prefixes,
e.g. `my_company.models,torchvision.models`) extends the default, the project's example models
(`llm2loss.example_models`). A prefix admits the module itself and every module below it (`a.b` admits
`a.b` and `a.b.c`, not `a.bc`). Flow parameters cannot change it: it is read here, where the
import happens.
"""

from __future__ import annotations

import os

from llm2loss.errors import ConfigError

ENV_VAR = "LLM2LOSS_ALLOW_ENTRYPOINTS"
DEFAULT_PREFIXES: tuple[str, ...] = ("llm2loss.example_models",)
# Project modules that were renamed: release.json files registered before name the old module,
# and a registered release is immutable, so the old name is read as the new one.
RENAMED_MODULES: dict[str, str] = {"llm2loss.zoo": "llm2loss.example_models"}


def current_ref(ref: str) -> str:
    """`ref` ('module:function') with a renamed project module replaced by its current name."""
    module, sep, attr = ref.partition(":")
    for old, new in RENAMED_MODULES.items():
        if module == old or module.startswith(f"{old}."):
            return f"{new}{module[len(old):]}{sep}{attr}"
    return ref


def allowed_prefixes() -> tuple[str, ...]:
    """The module prefixes this process may import entrypoints from: defaults, then ENV_VAR's."""
    extra = [p.strip() for p in os.environ.get(ENV_VAR, "").split(",")]
    return DEFAULT_PREFIXES + tuple(p for p in extra if p)


def is_allowed(module: str, prefixes: tuple[str, ...]) -> bool:
    """True when `module` is one of `prefixes` or lies below one of them."""
    return any(module == p or module.startswith(f"{p}.") for p in prefixes)


def check_allowed(ref: str, what: str = "entrypoint") -> str:
    """`ref` ('module:function') if its module is allowed here, else a ConfigError naming the
    setting. Called before the module is imported: importing it could run its code."""
    module = ref.partition(":")[0]
    prefixes = allowed_prefixes()
    if not is_allowed(module, prefixes):
        raise ConfigError(
            f"{what} {ref!r} is not allowed on this worker: its module {module!r} is not under "
            f"{', '.join(prefixes)}; if you trust that code, add its package to {ENV_VAR} "
            "(comma-separated module prefixes) in the environment of the workers that audit"
        )
    return ref
