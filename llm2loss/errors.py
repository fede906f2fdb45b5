"""The errors llm2loss raises for bad input and failed I/O.

Every error message names the problem and the fix in one or two sentences, so a user never needs
a traceback to know what to do. Callers (the CLI, the flows) catch `Llm2LossError` and print it.
"""

from __future__ import annotations


class Llm2LossError(Exception):
    """Base of every error llm2loss raises on purpose."""


class ConfigError(Llm2LossError, ValueError):
    """A spec, release.json, name or URI is invalid."""


class DataError(Llm2LossError, ValueError):
    """Input data is unusable: NaN/inf, wrong dimension, duplicate ids, no samples, bad labels."""


class NotFittedError(Llm2LossError, RuntimeError):
    """A diagnoser was used before `fit`."""


class NotFoundError(Llm2LossError, LookupError):
    """An unknown model, version, audit or artifact was asked for."""


class StoreError(Llm2LossError, RuntimeError):
    """The artifact store failed: wrong credentials, unreachable, or a corrupt part."""


class WeightsError(Llm2LossError, RuntimeError):
    """Model or encoder weights are missing, unreachable, mismatched or unsafe to load."""
