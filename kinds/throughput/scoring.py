"""Scoring: how a stored row becomes the value the metrics use. YOURS.

The "prediction" of a burst is what the service answered (the digest of its most common answer)
and the ground truth is the expected digest; every request is checked in predict.py, and a wrong
answer counts as a failed request. The throughput metrics read the burst's own columns
(request_latencies, requests_ok, requests_failed, burst_seconds).
"""

from __future__ import annotations

from typing import Any


def parse_prediction(row: dict[str, Any]) -> str | None:
    """The digest the service answered (most common answer of the burst)."""
    return row.get("prediction")
