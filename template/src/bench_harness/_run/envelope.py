"""The row envelope: one call of the user's predict() becomes the row the harness records.

Template-owned. The predict contract: `predict(item, params)` returns a dict with `prediction` and
`raw_response` plus any extras (kind-specific raw outputs), or raises. The harness adds the rest,
so every executor (serial, threads, processes, Dask) records the same columns:

* `input_id` (the item's) and `ground_truth` (the item's field named by benchmark.toml's
  `[data] ground_truth`; predict may return its own, e.g. a normalised answer);
* `latency`: the wall time of the call, unless predict returns its own (to leave out set-up such
  as fitting a model on its first call);
* `error`, `error_type` and `traceback` when predict raised: the category comes from
  `classify_exception`, and a `BenchmarkError` keeps its `raw_response` and extras;
* the segmentation fields (benchmark.toml `[analysis] segmentations`), from the item, when
  predict did not return them; a segmentation that is a parameter is a `params_` column already.

Old-style full rows (predict returned `input_id` and `error` itself) are recorded as they are,
with missing segmentation fields filled in.

Every value is made JSON-able here, inside the worker: lists, tuples, dicts and numpy values
become JSON text (numpy scalars plain numbers), so a row always pickles back from a process and
SQLite stores exactly what `predict_row` returns. What JSON cannot hold (a set, an arbitrary
object, NaN or infinity in the prediction) makes the row an INVALID_VALUE error that keeps the
value's repr, instead of text like `{1, 2, 3}` or a NaN counted as a wrong answer. NaN or
infinity elsewhere (an extra, a probability) is stored as NULL, as SQLite would store it anyway.
"""

from __future__ import annotations

import json
import math
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .._core.errors import INVALID_VALUE, UNKNOWN, BenchmarkError, classify_exception, describe, retry_after_of
from .._core.secrets import redact
from .._core.segments import input_length

TRACEBACK_CHARS = 4000  # the end of the traceback: where the error was raised
REPR_CHARS = 300  # of a value JSON cannot hold, in the error message and raw_response
_PLAIN = frozenset({str, int, bool, type(None)})  # stored as they are (float: when finite)
_FLOAT_ONLY = {float}


class InvalidValue(Exception):
    """A value JSON cannot represent (a set, an object, NaN in the prediction)."""


@dataclass(frozen=True)
class Envelope:
    """predict() wrapped into the full recorded row. Picklable: workers receive it with their tasks.

    `segmentations` are the configured ones; those that are parameters are skipped per call.
    """

    predict: Callable[[dict[str, Any], Any], Any]
    ground_truth: str = "label"
    segmentations: tuple[str, ...] = ()
    _item_segments: dict[type, tuple[str, ...]] = field(default_factory=dict, compare=False, repr=False)

    def __call__(self, item: dict[str, Any], params: Any) -> dict[str, Any]:
        """The row exactly as the harness records it (without the run's shared columns)."""
        return self.call(item, params)[0]

    def call(self, item: dict[str, Any], params: Any) -> tuple[dict[str, Any], float | None]:
        """(row, seconds a server asked to wait before a retry, or None). Never raises."""
        if "_malformed" in item:  # a data line that could not be read (datafiles): its own error row
            return self.error_row(item, params, BenchmarkError(item["_malformed"], INVALID_VALUE), 0.0), None
        started = time.perf_counter()
        try:
            result = self.predict(item, params)
            elapsed = time.perf_counter() - started
            if not isinstance(result, dict):
                raise TypeError(f"predict() must return a dict, got {type(result).__name__}")
        except Exception as exc:  # noqa: BLE001 - errors are data: one bad item never stops the run
            return self.error_row(item, params, exc, time.perf_counter() - started), retry_after_of(exc)
        if "input_id" in result and "error" in result:  # an old-style full row: recorded as it is
            row = result
        else:  # base()'s columns, written out: this runs once per task, and a call costs a microsecond
            row = {
                "input_id": item.get("input_id"),
                "prediction": None,
                "raw_response": None,
                "ground_truth": item.get(self.ground_truth),
                "latency": elapsed,
                "error": None,
                "error_type": None,
                **result,
            }
        retry_after = row.pop("retry_after", None) if "retry_after" in row else None
        if row["error"]:
            row["error"] = redact(str(row["error"]))  # a key echoed by an endpoint never reaches storage
            row["error_type"] = row["error_type"] or UNKNOWN
        names = self._item_segments.get(type(params))
        for name in self.item_segments(params) if names is None else names:
            if row.get(name) is None:
                row[name] = item.get(name) if name != "input_length" else segment_value(item, name)
        return json_row(row), retry_after

    def base(self, item: dict[str, Any], elapsed: float | None) -> dict[str, Any]:
        """The harness's columns, in the order every row has them."""
        return {
            "input_id": item.get("input_id"),
            "prediction": None,
            "raw_response": None,
            "ground_truth": item.get(self.ground_truth),
            "latency": elapsed,
            "error": None,
            "error_type": None,
        }

    def error_row(self, item: dict[str, Any], params: Any, exc: Exception, elapsed: float) -> dict[str, Any]:
        """The row of a call that raised: the category, the message, the traceback and any partial output."""
        row = self.base(item, elapsed)
        if isinstance(exc, BenchmarkError):
            row["raw_response"] = exc.raw_response
            row.update({k: v for k, v in exc.extras.items() if k not in row})
        row["error"] = redact(describe(exc))  # redacted before any truncation: no partial key survives
        row["error_type"] = classify_exception(exc)
        self.add_segments(row, item, params)
        row["traceback"] = redact("".join(traceback.format_exception(exc)))[-TRACEBACK_CHARS:]
        return json_row(row)

    def item_segments(self, params: Any) -> tuple[str, ...]:
        """The configured segmentations that come from the item (not a parameter of `params`)."""
        kind = type(params)
        names = self._item_segments.get(kind)
        if names is None:
            parameters = set(getattr(params, "__dataclass_fields__", ()))
            names = self._item_segments[kind] = tuple(n for n in self.segmentations if n not in parameters)
        return names

    def add_segments(self, row: dict[str, Any], item: dict[str, Any], params: Any) -> None:
        for name in self.item_segments(params):
            if row.get(name) is None:
                row[name] = segment_value(item, name)


def segment_value(item: dict[str, Any], name: str) -> Any:
    """A segmentation's value for one item: the item's field; `input_length` is computed when absent."""
    if name == "input_length" and "input_length" not in item:
        return input_length(item)
    return item.get(name)


def json_row(row: dict[str, Any]) -> dict[str, Any]:
    """`row` with every value SQLite and JSON can hold; an INVALID_VALUE error row when one cannot be."""
    unusual = [v for v in row.values() if type(v) not in _PLAIN]  # the usual case: only finite floats
    # A sum of floats is finite only when each one is (NaN and infinities propagate; an overflow
    # only sends a valid row down the slow path).
    if not unusual or (set(map(type, unusual)) == _FLOAT_ONLY and math.isfinite(sum(unusual))):
        return row
    failed = bool(row.get("error"))
    invalid: dict[str, str] = {}
    for name, value in row.items():
        try:
            row[name] = stored_value(value, strict=name == "prediction" and not failed)
        except InvalidValue as reason:
            invalid[name] = f"{reason}: {_short_repr(value)}"
            row[name] = _short_repr(value) if name == "raw_response" else None
    if invalid:
        message = "; ".join(f"{name} is {why}" for name, why in invalid.items())
        if not failed:
            row["error"] = f"InvalidValue: predict() returned what JSON cannot store: {message}"
            row["error_type"] = INVALID_VALUE
            row["prediction"] = None
        if row.get("raw_response") is None:
            row["raw_response"] = "; ".join(f"{name}={_short_repr(v)}" for name, v in invalid.items())
    return row


def stored_value(value: Any, strict: bool = False) -> Any:
    """The value as stored: plain scalars as they are, containers and arrays as JSON text.

    NaN and infinity become None, or raise InvalidValue when `strict` (the prediction).
    """
    kind = type(value)
    if kind in _PLAIN or kind is bytes:
        return value
    if kind is float:
        return value if math.isfinite(value) else _not_finite(value, strict)
    plain = _plain(value, strict)
    if isinstance(plain, (list, dict)):
        return json.dumps(plain)
    return plain


def _plain(value: Any, strict: bool) -> Any:
    """`value` as JSON's types (str, int, float, bool, None, list, dict), or InvalidValue."""
    if value is None or isinstance(value, (str, bool, int)):
        return value if type(value) in _PLAIN else _subclass(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else _not_finite(value, strict)
    if isinstance(value, (list, tuple)):
        return [_plain(v, strict) for v in value]
    if isinstance(value, dict):
        if not all(isinstance(k, (str, int, float, bool)) or k is None for k in value):
            raise InvalidValue("a dict with keys JSON cannot hold")
        return {k: _plain(v, strict) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        raise InvalidValue("a set (no order, not JSON: return a sorted list)")
    if hasattr(value, "tolist") and hasattr(value, "dtype"):  # numpy scalar or array
        return _plain(value.tolist(), strict)
    raise InvalidValue(f"a {type(value).__name__} (not JSON: return a str, number, bool, list or dict)")


def _subclass(value: Any) -> Any:
    """A str/int/bool subclass (an enum, numpy's bool_ is not one) as the plain type."""
    for plain in (bool, int, str):
        if isinstance(value, plain):
            return plain(value) if plain is not str else str.__str__(value)
    return value


def _not_finite(value: float, strict: bool) -> None:
    if strict:
        raise InvalidValue("not a finite number (NaN or infinity)")
    return None


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= REPR_CHARS else text[: REPR_CHARS - 3] + "..."


def predict_row(item: dict[str, Any], params: Any, predict: Callable | None = None) -> dict[str, Any]:
    """The row the harness records for one call of predict (your predict.py's, unless given): for tests."""
    from .._core.config import load_config
    from .._core.user import user_module

    cfg = load_config()
    return Envelope(predict or user_module("predict").predict, cfg.ground_truth, cfg.segmentations)(item, params)
