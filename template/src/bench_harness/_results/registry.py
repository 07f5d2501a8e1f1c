"""The metric registry: metrics.yml (package data) declares every metric once; Python binds its functions by name.

Template-owned. The same metrics.yml is included by copier.yml (the `metrics` question's choices and
validator), so the questionnaire, the metrics table, the report (intervals, which metrics it computes) and
the tag messages (direction) all read one declaration. A function becomes a metric's implementation with
`@implements("name")`; `check_bindings()` (and tests/test_registry.py) fail when the declarations and the
implementations differ.

It also holds what "correct" means: one rule per kind (benchmark.toml [analysis] correct), each with a Python
form (`is_correct`) and a DuckDB SQL form (`correct_sql`) that must agree on every stored row.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml

INTERVALS = ("wilson", "bootstrap", "order_statistic", "none")
REPORT_MODES = ("shown", "macro", "table")


@dataclass(frozen=True)
class MetricSpec:
    """One metric's declaration in metrics.yml."""

    name: str
    help: str
    higher_is_better: bool
    every_kind: bool
    interval: str
    report: str
    companion_of: str | None = None
    sql: str | None = None


@cache
def _document() -> dict[str, Any]:
    text = resources.files(__package__).joinpath("metrics.yml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


@cache
def specs() -> dict[str, MetricSpec]:
    """Every declared metric by name, in declaration order."""
    declared = {}
    for name, fields in _document()["metrics"].items():
        spec = MetricSpec(name=name, **fields)
        if spec.interval not in INTERVALS or spec.report not in REPORT_MODES:
            raise ValueError(f"metrics.yml: {name}: interval must be one of {INTERVALS}, report one of {REPORT_MODES}")
        declared[name] = spec
    return declared


def spec(name: str) -> MetricSpec:
    try:
        return specs()[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}: known metrics are {', '.join(sorted(specs()))}") from None


def higher_is_better(name: str) -> bool:
    """The metric's direction; a name the registry does not know counts as higher-is-better."""
    known = specs().get(name)
    return known.higher_is_better if known else True


def companions(name: str) -> tuple[str, ...]:
    """Metrics computed whenever `name` is chosen (accuracy -> accuracy_strict)."""
    return tuple(s.name for s in specs().values() if s.companion_of == name)


def reported(mode: str) -> tuple[str, ...]:
    """Names whose report mode is `mode` ('shown', 'macro' or 'table')."""
    return tuple(s.name for s in specs().values() if s.report == mode)


def allowed_for(kind_allowed: list[str] | tuple[str, ...]) -> list[str]:
    """The metrics a kind may choose: those of every kind plus the kind's own list (kind.yml metrics.allowed)."""
    return [s.name for s in specs().values() if s.every_kind or s.name in kind_allowed]


# -- binding implementations by name ---------------------------------------------------------------

MetricFn = Callable[[Any], float | None]
_IMPLEMENTATIONS: dict[str, MetricFn] = {}


def implements(*names: str) -> Callable[[MetricFn], MetricFn]:
    """Bind a function to declared metric names (a second implementation of a name is an error)."""

    def bind(fn: MetricFn) -> MetricFn:
        for name in names:
            spec(name)  # unknown names fail at import time
            if name in _IMPLEMENTATIONS and _IMPLEMENTATIONS[name] is not fn:
                raise ValueError(f"metric {name!r} has two implementations")
            _IMPLEMENTATIONS[name] = fn
        return fn

    return bind


def bind(name: str, fn: MetricFn) -> MetricFn:
    """`implements` for a function built by a factory (recall@k, percentiles)."""
    return implements(name)(fn)


def implementations() -> dict[str, MetricFn]:
    """Declared name -> function, in declaration order (after check_bindings())."""
    check_bindings()
    return {name: _IMPLEMENTATIONS[name] for name in specs()}


def check_bindings() -> None:
    """Every declared metric has an implementation and every implementation a declaration."""
    missing = [n for n in specs() if n not in _IMPLEMENTATIONS]
    extra = [n for n in _IMPLEMENTATIONS if n not in specs()]
    if missing or extra:
        raise RuntimeError(
            f"metric registry: declared but not implemented {missing}, implemented but not declared {extra}"
        )


# -- what "correct" means ----------------------------------------------------------------------------

# A decimal number, as both forms recognise it (Python's float() also accepts '1_000' and 'nan', DuckDB's
# cast has its own extras: one shared pattern keeps the two forms identical).
NUMBER = r"^[ \t\n\r]*[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?[ \t\n\r]*$"
_NUMBER = re.compile(NUMBER)
# Python's str.strip() and DuckDB's trim() remove different characters by default: both strip these only.
SPACE = " \t\n\r"
# Numbers compare at 15 significant digits: SQLite turns a REAL into text with 15 (0.1 + 0.2 reads back as
# '0.3' in the report's SQL), so both forms round there.
DIGITS = 15


def rules() -> dict[str, str]:
    """Correctness rule name -> its description (metrics.yml `correctness`)."""
    return {name: fields["help"] for name, fields in _document()["correctness"].items()}


def as_text(value: Any) -> str | None:
    """A stored cell as text, as the report's SQL sees it (DuckDB reads SQLite columns as VARCHAR)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):  # SQLite stores NaN as NULL
        return None
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float) and math.isinf(value):
        return "Inf" if value > 0 else "-Inf"
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value)
    return str(value)


def canonical(text: str | None) -> str | None:
    """A number as its value at 15 significant digits ('1', '1.0' and ' 1e0' are '1'); other text trimmed."""
    if text is None:
        return None
    if _NUMBER.match(text):
        number = float(text.strip(SPACE)) + 0.0  # + 0.0: -0 is 0
        if math.isfinite(number):
            return format(number, f".{DIGITS}g")
    return text.strip(SPACE)


def equal(prediction: Any, truth: Any) -> bool:
    """Rule `equal`: the same number (at 15 significant digits), or else the same text, surrounding spaces trimmed."""
    p, t = canonical(as_text(prediction)), canonical(as_text(truth))
    return p is not None and t is not None and p == t


def _json_item(item: Any) -> str | None:
    if item is None or isinstance(item, (list, dict)):
        return None
    if isinstance(item, bool):
        return "true" if item else "false"
    return canonical(item)  # numbers arrive as their JSON text (parse_int/parse_float=str)


def _items(text: str) -> list[str | None]:
    """A stored cell's items, canonical: a JSON list's scalars, else the cell itself as a list of one.

    JSON as Python's json module reads it (NaN and Infinity included, as json.dumps writes them); DuckDB
    also accepts trailing commas and -NaN, which no stored list has (the harness stores json.dumps text).
    """
    if text.strip(SPACE).startswith("["):
        try:
            parsed = json.loads(text, parse_int=str, parse_float=str, parse_constant=str)
        except ValueError:
            parsed = None
        if isinstance(parsed, list):
            return [_json_item(item) for item in parsed]
    return [canonical(text)]


def top1_relevant(prediction: Any, truth: Any) -> bool:
    """Rule `top1_relevant`: the ranking's first item is one of the ground truth's items (canonical text)."""
    p, t = as_text(prediction), as_text(truth)
    if p is None or t is None:
        return False
    ranked, relevant = _items(p), {item for item in _items(t) if item is not None}
    return bool(ranked) and ranked[0] is not None and ranked[0] in relevant


CORRECTNESS: dict[str, Callable[[Any, Any], bool]] = {"equal": equal, "top1_relevant": top1_relevant}


def is_correct(rule: str) -> Callable[[Any, Any], bool]:
    """The Python form of a correctness rule."""
    try:
        return CORRECTNESS[rule]
    except KeyError:
        raise KeyError(f"unknown correctness rule {rule!r}: known rules are {', '.join(CORRECTNESS)}") from None


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


_SQL_SPACE = "(' ' || chr(9) || chr(10) || chr(13))"  # SPACE


def _sql_canonical(expr: str) -> str:
    """The SQL form of canonical() over a VARCHAR expression."""
    trimmed = f"trim({expr}, {_SQL_SPACE})"
    number = f"(TRY_CAST({trimmed} AS DOUBLE) + 0.0)"
    return (
        f"CASE WHEN regexp_matches({expr}, {_literal(NUMBER)}) AND isfinite({number}) "
        f"THEN printf('%.{DIGITS}g', {number}) ELSE {trimmed} END"
    )


def _sql_items(expr: str) -> str:
    """The SQL form of _items(): a VARCHAR cell as a list of canonical VARCHAR items."""
    parsed = f"TRY(CAST(json({expr}) AS JSON[]))"
    scalar = _sql_canonical("x ->> '$'")
    item = f"CASE WHEN json_type(x) IN ('ARRAY', 'OBJECT') THEN NULL ELSE {scalar} END"
    listed = f"starts_with(trim({expr}, {_SQL_SPACE}), '[') AND {parsed} IS NOT NULL"
    return f"CASE WHEN {listed} THEN list_transform({parsed}, x -> {item}) ELSE [{_sql_canonical(expr)}] END"


def correct_sql(pred: str, truth: str, rule: str = "equal") -> str:
    """The SQL form of a correctness rule over two VARCHAR expressions: TRUE or FALSE, never NULL."""
    is_correct(rule)
    if rule == "equal":
        body = f"coalesce({_sql_canonical(pred)} = {_sql_canonical(truth)}, FALSE)"
    else:
        first = f"({_sql_items(pred)})[1]"
        body = f"coalesce({first} IS NOT NULL AND list_contains({_sql_items(truth)}, {first}), FALSE)"
    return f"(CASE WHEN {pred} IS NULL OR {truth} IS NULL THEN FALSE ELSE {body} END)"
