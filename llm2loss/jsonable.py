"""Answers and metrics as plain JSON types: the one conversion the CLI, the service and the report share.

`jsonable(value)` turns what the analysis and the query layer return (dicts and lists of numpy
scalars and arrays, pandas DataFrames, NaN) into what strict JSON can hold: numpy values
unwrapped, arrays as lists, DataFrames as lists of row dicts, NaN, inf, None and pandas' NA as
null, and anything else (a path, a timestamp) as its string. It imports neither pandas nor
numpy itself: a value can only be a DataFrame when pandas is loaded already.
"""

from __future__ import annotations

import math
import sys
from typing import Any


def _is_missing(value: Any) -> bool:
    pandas = sys.modules.get("pandas")
    return pandas is not None and (value is pandas.NA or value is pandas.NaT)


def jsonable(value: Any) -> Any:
    """`value` as plain JSON types (see the module doc); dict keys become strings."""
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(value, pandas.DataFrame):
        return jsonable(value.to_dict(orient="records"))
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "tolist") and getattr(value, "ndim", None) is not None:  # numpy arrays and scalars
        value = value.tolist()
        if isinstance(value, list):
            return jsonable(value)
    if value is None or _is_missing(value):
        return None
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (bool, int, str)):
        return value
    return str(value)
