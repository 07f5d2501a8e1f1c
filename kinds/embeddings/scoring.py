"""Scoring: how a stored row becomes the value compared with ground_truth. YOURS.

Metrics call parse_prediction(row) on every recorded row, so changing how raw outputs are
parsed is a re-score (`make rescore`), not a re-run: the raw output is already in the table.
For retrieval the "prediction" scored is the whole ranking: recall@k and MRR compare it with
the query's relevant document ids (ground_truth).
"""

from __future__ import annotations

import json
from typing import Any


def parse_prediction(row: dict[str, Any]) -> list[str] | None:
    """The ranked document ids from the stored raw output (falls back to the top-1 `prediction`)."""
    raw = row.get("raw_response")
    try:
        return [str(doc) for doc in json.loads(raw)["ranking"]]
    except (ValueError, KeyError, TypeError):
        top = row.get("prediction")
        return [str(top)] if top is not None else None
