"""One rule for "no value": what pandas, Arrow and JSON hand us for an empty cell."""
from __future__ import annotations

import pandas as pd

# Containers are values even when empty or holding NaNs (pd.isna would answer per element).
_CONTAINERS = (str, bytes, list, tuple, dict, set, frozenset)


def is_missing(value) -> bool:
    """True for ``None``, float/NumPy NaN, ``pd.NA`` and ``NaT``; False for every other value,
    including strings, containers and NumPy arrays."""
    if value is None:
        return True
    if isinstance(value, _CONTAINERS) or getattr(value, "ndim", 0) > 0:
        return False
    return bool(pd.isna(value))


def none_if_missing(value):
    """``value``, or None where :func:`is_missing` says it holds no value."""
    return None if is_missing(value) else value
