"""Scoring: how a stored row becomes the value compared with ground_truth. YOURS.

Metrics call parse_prediction(row) on every recorded row, so changing how raw outputs are
parsed is a re-score (`make rescore`), not a re-run: the raw output is already in the table.
"""

from __future__ import annotations

import json
from typing import Any


def parse_prediction(row: dict[str, Any]) -> float | None:
    """The predicted value from the stored raw output (falls back to `prediction`)."""
    raw = row.get("raw_response")
    try:
        return float(json.loads(raw)["value"]) if raw else float(row["prediction"])
    except (ValueError, KeyError, TypeError):
        value = row.get("prediction")
        return float(value) if isinstance(value, (int, float)) else None
