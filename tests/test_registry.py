"""The metric registry (template/src/bench_harness/_results/metrics.yml) and the kind manifests agree with the code.

In-process, no render: every declared metric has exactly one implementation and vice versa; every kind's
manifest names known metrics and a known correctness rule; tag messages take a metric's direction from the
registry; and each correctness rule's Python form (metrics.py) and SQL form (the report) agree on the same
stored rows, read back as each side reads them (sqlite3 for Python, DuckDB over the SQLite file for the SQL).
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from budget import examples
from conftest import TEMPLATE
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(TEMPLATE / "template" / "src"))

from bench_harness._results import metrics, registry  # noqa: E402
from bench_harness._storage import duck  # noqa: E402
from bench_harness._storage.store import to_cell  # noqa: E402
from bench_harness._versioning import versioning  # noqa: E402

MANIFESTS = {path.parent.name: yaml.safe_load(path.read_text()) for path in (TEMPLATE / "kinds").glob("*/kind.yml")}


# -- declarations and implementations ---------------------------------------------------------------


def test_every_declared_metric_has_exactly_one_implementation_and_vice_versa() -> None:
    declared = yaml.safe_load((TEMPLATE / "template/src/bench_harness/_results/metrics.yml").read_text())["metrics"]
    assert list(metrics.METRICS) == list(declared)
    assert all(callable(fn) for fn in metrics.METRICS.values())
    assert len({id(fn) for fn in metrics.METRICS.values()}) == len(declared), "one function per metric"


def test_the_binding_check_fails_on_a_missing_or_an_undeclared_metric(monkeypatch: pytest.MonkeyPatch) -> None:
    bound = dict(registry._IMPLEMENTATIONS)
    monkeypatch.setattr(registry, "_IMPLEMENTATIONS", {k: v for k, v in bound.items() if k != "mrr"})
    with pytest.raises(RuntimeError, match="not implemented \\['mrr'\\]"):
        registry.check_bindings()
    monkeypatch.setattr(registry, "_IMPLEMENTATIONS", {**bound, "novel": lambda m: 0.0})
    with pytest.raises(RuntimeError, match="not declared \\['novel'\\]"):
        registry.check_bindings()
    with pytest.raises(KeyError, match="unknown metric 'novel'"):
        registry.implements("novel")(lambda m: 0.0)
    with pytest.raises(ValueError, match="two implementations"):
        registry.implements("mrr")(lambda m: 0.0)


def test_companions_are_computed_with_their_base_metric() -> None:
    rows = [{"input_id": "a", "prediction": 1, "ground_truth": 1}, {"input_id": "b", "error": "x", "ground_truth": 1}]
    values = metrics.compute(rows, ["accuracy"], parse=lambda r: r.get("prediction"))
    assert values["accuracy"] == 1.0 and values["accuracy_strict"] == 0.5


@pytest.mark.parametrize("kind", sorted(MANIFESTS))
def test_each_manifest_names_known_metrics_and_rules(kind: str) -> None:
    manifest, specs = MANIFESTS[kind], registry.specs()
    assert set(manifest["metrics"]["allowed"]) <= set(specs)
    assert set(manifest["metrics"]["default"]) <= set(registry.allowed_for(manifest["metrics"]["allowed"]))
    assert manifest["scoring"]["correct"] in registry.CORRECTNESS
    assert manifest["scoring"]["quality"] in specs and specs[manifest["scoring"]["quality"]].report == "shown"


def test_every_kind_specific_metric_is_allowed_by_some_kind() -> None:
    allowed = {m for manifest in MANIFESTS.values() for m in manifest["metrics"]["allowed"]}
    orphans = [s.name for s in registry.specs().values() if not s.every_kind and not s.companion_of]
    assert [m for m in orphans if m not in allowed] == []


def test_the_correctness_rules_are_the_declared_ones() -> None:
    assert set(registry.rules()) == set(registry.CORRECTNESS)


def test_tag_messages_take_direction_from_the_registry() -> None:
    rows = [{"params_model": "a", "mae": 2.0, "r2": 0.1}, {"params_model": "b", "mae": 1.0, "r2": 0.5}]
    assert versioning.best_row(rows, ["mae"])[0]["params_model"] == "b"
    assert versioning.best_row(rows, ["r2"])[0]["params_model"] == "b"
    for name, spec in registry.specs().items():
        assert versioning.lower_is_better(name) == (not spec.higher_is_better)
    assert not versioning.lower_is_better("prediction_error_free")  # unknown names: no guessing from the name


# -- one definition of "correct": the Python and SQL forms agree --------------------------------------

AFFINITIES = ("", "TEXT", "REAL", "INTEGER", "NUMERIC")


def stored_pairs(db: Path, pairs: list[tuple[Any, Any]], affinity: str) -> None:
    with sqlite3.connect(db) as con:
        con.execute(f"CREATE TABLE rows (id INTEGER PRIMARY KEY, p {affinity}, t {affinity})")
        con.executemany("INSERT INTO rows (p, t) VALUES (?, ?)", [(to_cell(p), to_cell(t)) for p, t in pairs])
    con.close()


def python_form(db: Path, rule: str) -> list[bool]:
    """As metrics.py sees the rows: sqlite3 values, the rule's Python form."""
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT p, t FROM rows ORDER BY id").fetchall()
    con.close()
    return [registry.is_correct(rule)(p, t) for p, t in rows]


def sql_form(db: Path, rules: list[str]) -> list[tuple[bool, ...]]:
    """As the report sees the rows: DuckDB over the SQLite file, every column read as VARCHAR."""
    con = duck.connect(db, read_only=True)
    try:
        con.execute("SET sqlite_all_varchar = true")
        exprs = ", ".join(registry.correct_sql("CAST(p AS VARCHAR)", "CAST(t AS VARCHAR)", rule) for rule in rules)
        return con.execute(f"SELECT {exprs} FROM db.rows ORDER BY CAST(id AS INTEGER)").fetchall()  # id read as text
    finally:
        con.close()


def agree(tmp: Path, pairs: list[tuple[Any, Any]], rules: list[str], affinity: str = "") -> dict[str, list[bool]]:
    """Each rule's verdicts on the stored pairs, after checking that its two forms give the same ones."""
    db = tmp / f"{affinity or 'none'}-{len(list(tmp.iterdir()))}.db"
    stored_pairs(db, pairs, affinity)
    sql = sql_form(db, rules)
    verdicts = {}
    for index, rule in enumerate(rules):
        python = python_form(db, rule)
        differ = [(pairs[i], python[i], sql[i][index]) for i in range(len(pairs)) if python[i] != sql[i][index]]
        assert differ == [], f"{rule} ({affinity or 'no'} affinity): (pair, python, sql) disagree"
        verdicts[rule] = python
    return verdicts


RULES = sorted(registry.CORRECTNESS)
EDGE_CASES = [
    (1, 1),
    (1, "1"),
    ("1", 1.0),
    (1.0, "1.0"),
    (" 1 ", "1"),
    ("1e0", 1),
    ("01", 1),
    ("-0", 0.0),
    (0.1 + 0.2, 0.3),
    ("0.30000000000000004", "0.3"),
    ("1_000", 1000),
    ("nan", "nan"),
    ("inf", float("inf")),
    (float("inf"), "Inf"),
    (float("nan"), None),
    (None, None),
    (None, 1),
    ("", ""),
    (" ", ""),
    ("A", " A "),
    ("a", "A"),
    (True, 1),
    (False, "0"),
    ("true", True),
    ("[1]", 1),
    ("[1]", "[1]"),
    ('["d1", "d3"]', '["d1"]'),
    ('["d3", "d1"]', '["d1", "d3"]'),
    (["d1", "d2"], ["d1"]),
    (["d2", "d1"], ["d1"]),
    ([], ["d1"]),
    (["d1"], []),
    ("[bad", "[bad"),
    ("[bad", "bad"),
    ("[1, 2]", "1"),
    ("[1.0, 2]", "[1]"),
    ('["1"]', "[1]"),
    ("[null, 1]", "[1]"),
    ("[[1], 1]", "[[1]]"),
    ('[{"a": 1}]', '[{"a": 1}]'),
    ("[true]", "true"),
    ("[1e3]", 1000),
    ("  [1] ", "1"),
    ("[NaN]", "[NaN]"),
    ("[Infinity]", "Infinity"),
    ("[-Infinity, 1]", "-Infinity"),
    ('{"a": 1}', '{"a": 1}'),
    ("1e999", "1e999"),
    (str(10**20), 1e20),
    (2**63 - 1, 2**63 - 1),
    ("\t1\n", 1),
    ("\u00a01", "1"),
    ("é", "é"),
    ("'", "'"),
    ('"1"', "1"),
    ("1.", "1"),
    (".5", 0.5),
    ("+1", 1),
]


@pytest.mark.parametrize("affinity", AFFINITIES)
def test_python_and_sql_forms_agree_on_edge_cases(affinity: str, tmp_path: Path) -> None:
    agree(tmp_path, EDGE_CASES, RULES, affinity)


def test_what_each_rule_counts_as_correct(tmp_path: Path) -> None:
    cases = [(1, "1.0"), (" A", "A "), ("A", "B"), (None, "1"), (0.1 + 0.2, "0.3"), ('["d3", "d1"]', '["d1", "d3"]'),
             ('["d2", "d1"]', '["d1"]'), ('["d1"]', "d1")]  # fmt: skip
    verdicts = agree(tmp_path, cases, RULES)
    assert verdicts["equal"] == [True, True, False, False, True, False, False, False]
    assert verdicts["top1_relevant"] == [True, True, False, False, True, True, False, True]


def test_a_ranking_is_judged_by_its_first_item_in_python_and_in_sql(tmp_path: Path) -> None:
    """The disagreement issue 12 found: metrics.same said a ranking was wrong, the report's SQL said right."""
    ranking, relevant = ["d1", "d7", "d3"], ["d1"]
    assert agree(tmp_path, [(ranking, relevant)], RULES) == {"equal": [False], "top1_relevant": [True]}


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    # Any text, but not DuckDB's JSON extensions (trailing commas, -NaN): stored lists are json.dumps text.
    st.text(alphabet=' 0123456789.eE+-_[]",abdnNIfinty\t', max_size=8).filter(
        lambda s: not re.search(r",\s*\]|-NaN", s)
    ),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda x: f"{x!r}"),
    st.integers(-1000, 1000).map(lambda x: f" {x} "),
)
ITEMS = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.floats(-5, 5), st.sampled_from(["d1", "d2", "1", " 1"])
)
LISTS = st.lists(ITEMS, max_size=4)
VALUES = st.one_of(SCALARS, LISTS, LISTS.map(json.dumps), LISTS.map(lambda v: json.dumps(v, separators=(",", ":"))))


def related(value: Any) -> st.SearchStrategy:
    """A second value close to the first, so equal pairs are common (1 and '1', [..] and its first item)."""
    options = [st.just(value), VALUES]
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        options += [st.just(str(value)), st.just(float(value)), st.just(f" {value} ")]
    if isinstance(value, list) and value:
        options += [st.just(value[:1]), st.just(value[0]), st.just(json.dumps(value[::-1]))]
    return st.one_of(options)


PAIRS = VALUES.flatmap(lambda first: related(first).map(lambda second: (first, second)))


@settings(max_examples=examples(25), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pairs=st.lists(PAIRS, min_size=1, max_size=150), affinity=st.sampled_from(AFFINITIES))
def test_python_and_sql_forms_agree_on_random_rows(pairs: list, affinity: str, tmp_path: Path) -> None:
    agree(tmp_path, pairs, RULES, affinity)
