"""Reading stored cells as the metrics need them, shared by metrics.py (the reference) and aggregate.py.

Template-owned. SQLite hands back whatever a column holds (a number, its text, JSON text of a list),
so both the Python and the streamed forms of a metric read a cell through these functions.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any


def number(value: Any) -> float | None:
    """A finite float from a stored cell (SQLite may hand back text), else None."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def as_list(value: Any) -> list[Any]:
    """A list from a stored cell: lists are stored as JSON text, a single value is a list of one."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, str) and value.startswith("["):
        try:
            parsed = json.loads(value)
        except ValueError:
            return [value]
        return parsed if isinstance(parsed, list) else [parsed]
    return [value]


def stored_prediction(row: dict[str, Any]) -> Any:
    """The default parsing: the stored `prediction` (aggregate.py recognises it by identity and groups in SQL)."""
    return row.get("prediction")


def parse_prediction_fn() -> Callable[[dict], Any]:
    """The user's scoring.parse_prediction, or the stored prediction when there is none."""
    from .._core.user import user_module

    try:
        scoring = user_module("scoring")
    except ImportError:
        return stored_prediction
    return getattr(scoring, "parse_prediction", stored_prediction)
