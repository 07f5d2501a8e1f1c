"""Scoring: how a stored row becomes the value compared with ground_truth. YOURS.

Metrics call parse_prediction(row) on every recorded row, so changing how raw outputs are
parsed is a re-score (`make rescore`), not a re-run: the raw response is already in the table.
An answer is compared after normalisation (case, spaces, surrounding punctuation): exact match.
"""

from __future__ import annotations

import json
import re
from typing import Any

SENTENCE = re.compile(r"answer is\s*:?\s*(.+)", re.IGNORECASE)


def normalise(answer: Any) -> str:
    """Lower case, single spaces, no surrounding quotes or final full stop."""
    text = " ".join(str(answer).split()).lower()
    return text.strip(" \"'`.").strip()


def extract_answer(text: str | None) -> str | None:
    """The answer in a response: a JSON object's "answer", 'The answer is X.', else the last line."""
    if not text or not text.strip():
        return None
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and "answer" in parsed:
        return normalise(parsed["answer"])
    found = SENTENCE.search(text)
    if found:
        return normalise(found.group(1))
    return normalise(text.strip().splitlines()[-1])


def parse_prediction(row: dict[str, Any]) -> str | None:
    """The normalised answer from the stored raw response (falls back to `prediction`)."""
    return extract_answer(row.get("raw_response")) or row.get("prediction")
