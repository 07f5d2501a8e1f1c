"""Loading the dataset. YOURS: point it at your data.

Each item is one burst of load: `requests` calls carrying `text` (the request payload), with an
`input_type` (short / medium / long payload) to slice results by. The bundled sample holds eight
bursts of 25 requests. Every item needs a unique, stable `input_id`.
"""

from __future__ import annotations

from typing import Any

from bench_harness import dataset


def load_items(limit: int | None = None) -> list[dict[str, Any]]:
    """The bursts to run, in a stable order."""
    items = [dict(r) for r in dataset()]
    return items[:limit]  # limit=None: all of them
