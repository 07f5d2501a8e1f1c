"""Segmentation fields: the dimensions you planned to slice results by (benchmark.toml).

Template-owned. The harness's row envelope (_run/envelope.py) adds them to every prediction row,
computed from the item, and to cache hits when they are copied (so a segmentation added by
`copier update` reaches cached rows without recomputing). predict() need not return them; an
old-style predict() that returns `segment_fields(item)` itself keeps working. A segmentation that
is a parameter (model_name, temperature, ...) is already a `params_<name>` column and is not
repeated; `input_length` is computed from the item's text when the item does not carry it.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

TEXT_FIELDS = ("text", "prompt", "question", "query", "input")


@lru_cache(maxsize=1)
def configured_segmentations() -> tuple[str, ...]:
    from .._core.config import load_config

    try:
        return load_config().segmentations
    except FileNotFoundError:
        return ()


def input_length(item: dict[str, Any]) -> int | None:
    for name in TEXT_FIELDS:
        if isinstance(item.get(name), str):
            return len(item[name])
    return None


def segment_fields(item: dict[str, Any], names: tuple[str, ...] | None = None, params: Any = None) -> dict[str, Any]:
    """The item's value for each segmentation that is not a parameter."""
    names = configured_segmentations() if names is None else names
    param_names = set(getattr(params, "__dataclass_fields__", {}))
    fields = {}
    for name in names:
        if name in param_names:
            continue
        if name == "input_length" and "input_length" not in item:
            fields[name] = input_length(item)
        else:
            fields[name] = item.get(name)
    return fields
