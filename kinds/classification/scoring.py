"""Scoring: how a stored row becomes the value compared with ground_truth. YOURS.

Metrics call parse_prediction(row) on every recorded row, so changing how raw outputs are
parsed is a re-score (`make rescore`), not a re-run: the raw output is already in the table.
"""

from __future__ import annotations

import json
from typing import Any


def parse_prediction(row: dict[str, Any]) -> Any:
    """The predicted class: the argmax of the stored probabilities (falls back to `prediction`)."""
    raw = row.get("raw_response")
    if not raw:
        return row.get("prediction")
    try:
        parsed = json.loads(raw)
        probabilities = parsed["probabilities"]
        return parsed["classes"][max(range(len(probabilities)), key=probabilities.__getitem__)]
    except (ValueError, KeyError, TypeError, IndexError):
        return row.get("prediction")
