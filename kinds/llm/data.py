"""Loading the dataset. YOURS: point it at your data.

The bundled sample is a small question-answering set written for this template: 32 questions
with short, unambiguous answers (arithmetic, geography, science, language), each with a
`domain` and a `difficulty`. Every item needs a unique, stable `input_id`; the prompt template
(predict.py) puts the item's `question` into the user message and `answer` is the ground truth.
"""

from __future__ import annotations

from typing import Any

from bench_harness import dataset


def load_items(limit: int | None = None) -> list[dict[str, Any]]:
    """The questions to benchmark, in a stable order."""
    items = [dict(r) for r in dataset()]
    return items[:limit]  # limit=None: all of them
