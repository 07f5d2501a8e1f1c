"""Loading the dataset. YOURS: point it at your data.

The bundled sample is a small retrieval set written for this template: 30 short factual
documents (science, geography, history, technology, health, food) and 30 queries, each
paraphrasing one document with few shared words, so that matching meaning beats matching
words. The queries are the items benchmarked; the documents are the corpus every query is
ranked against. Every item needs a unique, stable `input_id`; a query lists its `relevant`
document ids.
"""

from __future__ import annotations

import ast
from functools import lru_cache
from typing import Any

from bench_harness import dataset


def relevant_ids(value: Any) -> list[str]:
    """A query's relevant document ids: a list, or its text form when a CSV cell held the list."""
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value)  # "['doc-01']" as CSV writes a list, or '["doc-01"]'
        except (ValueError, SyntaxError):
            value = [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return [] if value is None else [str(value)]


def load_items(limit: int | None = None) -> list[dict[str, Any]]:
    """The queries to benchmark, in a stable order."""
    items = [
        {**r, "relevant": relevant_ids(r.get("relevant"))} for r in dataset() if r.get("record", "query") == "query"
    ]
    return items[:limit]  # limit=None: all of them


@lru_cache(maxsize=1)
def load_corpus() -> tuple[tuple[str, str], ...]:
    """(document id, text) of every document a query is ranked against."""
    return tuple((str(r["input_id"]), str(r["text"])) for r in dataset() if r.get("record") == "document")
