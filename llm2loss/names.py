"""Validation of the names that become store keys and paths (model, version, dataset, ...).

A name is checked before it is joined into any path or object key, so `../../x` or `a/b` can never
escape the store prefix.
"""

from __future__ import annotations

import re

from llm2loss.errors import ConfigError

_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")


def validate_name(value: object, what: str) -> str:
    """Return `value` if it is a safe name, else raise ConfigError naming `what`.

    Safe: 1-128 characters from [A-Za-z0-9._-], not starting with '.', so never '.' or '..'.
    """
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ConfigError(
            f"invalid {what} {value!r}: use 1-128 characters from A-Z a-z 0-9 . _ - "
            f"(no slashes, no leading dot), e.g. 'v2' or 'spam-filter'"
        )
    return value
