"""Metrics computed in SQL and streamed chunks (_results/aggregate.py) equal the Python reference (metrics.compute).

The reference takes a list of every row; aggregate.compute reads the database in chunks. Hypothesis
writes rows with errors, cache hits, NULLs, mixed 1/'1'/1.0/-0.0 labels, text numbers, JSON lists
and every kind's columns, and both must give the same value for every declared metric (floats to
1e-12). scikit-learn is the independent reference for accuracy, macro F1, MAE, RMSE and R².
"""

from __future__ import annotations

import json
import math
import sqlite3
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from budget import examples
from conftest import TEMPLATE
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(TEMPLATE / "template" / "src"))

from bench_harness._results import aggregate, metrics, registry  # noqa: E402
from bench_harness._results.cells import stored_prediction  # noqa: E402
from bench_harness._storage.store import Store  # noqa: E402

TABLE = "predictions"
WHERE = {"experiment_version": "e0.0.2", "phase": "experiment", "config_id": "cfg-a"}
ALL_METRICS = list(registry.specs())

labels = st.sampled_from([0, 1, 2, "1", 1.0, -0.0, 0.0, "a", " a", "b", None, 2.5, "2.50", "x y"])
lists = st.lists(st.sampled_from(["d1", "d2", "d3", 4, "4"]), max_size=4).map(json.dumps)
cells = st.one_of(labels, lists)
numbers = st.one_of(
    st.none(),
    st.floats(min_value=-1e3, max_value=1e3, allow_nan=False),
    st.integers(min_value=-5, max_value=50),
    st.sampled_from(["0.25", " 3 ", "abc", math.inf, math.nan]),
)
latency_lists = st.lists(st.one_of(st.floats(0, 5), st.sampled_from(["1.5", "x", None])), max_size=4).map(json.dumps)


@st.composite
def prediction_rows(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Rows of two configurations and two versions; some inputs recorded twice (only the latest counts)."""
    rows = []
    for _ in range(draw(st.integers(0, 25))):
        row: dict[str, Any] = {
            "input_id": draw(st.integers(0, 12)),
            "config_id": draw(st.sampled_from(["cfg-a", "cfg-a", "cfg-b"])),
            "experiment_version": draw(st.sampled_from(["e0.0.2", "e0.0.2", "e0.0.1"])),
            "phase": "experiment",
            "cache_key": draw(st.sampled_from(["k", "k", None])),  # None: a row another tool logged
            "error": draw(st.sampled_from([None, None, None, "", "TimeoutError: slow"])),
            "cache": draw(st.sampled_from(["", "", None, "run-0"])),
            "prediction": draw(cells),
            "ground_truth": draw(cells),
            "raw_response": draw(cells),
        }
        for column in ("latency", "function_time", "cost_usd", "prompt_tokens", "prediction_std", "cpu"):
            row[column] = draw(numbers)
        for column in ("requests_ok", "burst_seconds", "requests_failed", "requests_total"):
            row[column] = draw(st.one_of(st.none(), st.integers(0, 20), st.floats(0, 9)))
        row["request_latencies"] = draw(latency_lists)
        rows.append(row)
    return rows


def write(rows: list[dict[str, Any]], path: Path | str = ":memory:", typed: bool = True) -> Store:
    """The rows in a predictions table; `typed=False`: columns without a declared type keep 1, 1.0, '1' apart."""
    store = Store(path)
    if not typed:
        columns = dict.fromkeys(k for row in rows for k in row)
        store.conn.execute(f"CREATE TABLE {TABLE} (track_id, timestamp, {', '.join(columns) or 'x'})")
    store.insert(TABLE, [{"track_id": "t", "timestamp": "now", **row} for row in rows] or [{"track_id": "t"}])
    return store


def reference(store: Store, chosen: list[str], parse: Any, correct: str) -> dict[str, Any]:
    """Today's path: every latest row of the configuration as a dict, then metrics.compute."""
    if "cache_key" not in store.columns(TABLE, refresh=True):
        return metrics.compute([], chosen, parse, correct)
    own = "cache_key IS NOT NULL AND " + " AND ".join(f"{k} = ?" for k in WHERE)  # harness rows only
    rows = store.query_dicts(
        f"SELECT * FROM {TABLE} WHERE rowid IN "
        f"(SELECT MAX(rowid) FROM {TABLE} WHERE {own} GROUP BY config_id, input_id) ORDER BY rowid",
        tuple(WHERE.values()),
    )
    return metrics.compute(rows, chosen, parse, correct)


def assert_same(streamed: dict[str, Any], expected: dict[str, Any]) -> None:
    assert streamed.keys() == expected.keys()
    for name, value in expected.items():
        got = streamed[name]
        if isinstance(value, float) and isinstance(got, float):
            assert math.isclose(got, value, rel_tol=1e-12, abs_tol=1e-12) or got == value, (name, got, value)
        else:
            assert got == value, (name, got, value)


def raw_as_prediction(row: dict[str, Any]) -> Any:
    """A user parse that reads another column: the streamed path must call it, not group `prediction`."""
    return row.get("raw_response")


@settings(max_examples=examples(250), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=prediction_rows(),
    parse=st.sampled_from([stored_prediction, raw_as_prediction]),
    correct=st.sampled_from(["equal", "top1_relevant"]),
    chosen=st.sampled_from(
        [ALL_METRICS, ["accuracy", "f1_macro", "precision_macro", "recall_macro", "latency_p50"], ["mae", "r2"]]
    ),
    typed=st.booleans(),
)
def test_streamed_metrics_equal_the_python_reference(
    rows: list[dict[str, Any]], parse: Any, correct: str, chosen: list[str], typed: bool
) -> None:
    with write(rows, typed=typed) as store:
        expected = reference(store, chosen, parse, correct)
        streamed = aggregate.compute(store.conn, TABLE, WHERE, chosen, parse, correct)
    assert_same(streamed, expected)


def test_every_declared_metric_has_a_streamed_form() -> None:
    assert set(aggregate.FORMS) == set(registry.specs())
    form = aggregate.FORMS.pop("mrr")
    try:
        with pytest.raises(RuntimeError, match="no streamed form for \\['mrr'\\]"):
            aggregate.check_forms()
    finally:
        aggregate.FORMS["mrr"] = form


def test_unknown_metric_is_reported() -> None:
    with write([]) as store, pytest.raises(KeyError, match="unknown metric 'nope'"):
        aggregate.compute(store.conn, TABLE, WHERE, ["nope"], stored_prediction)


@pytest.mark.parametrize("parse", [stored_prediction, raw_as_prediction], ids=["grouped-in-sql", "user-parse"])
def test_labels_that_print_differently_are_different_classes(parse: Any) -> None:
    """1, '1' and 1.0 are one answer (rule `equal`) but three per-class labels, as in the reference."""
    truths = [1, "1", 1.0, -0.0, 0.0, "a", "a"]
    predictions = [1, 1, "1", 0.0, -0.0, " a", None]
    rows = [
        {**WHERE, "cache_key": "k", "input_id": i, "prediction": p, "raw_response": p, "ground_truth": t}
        | {"error": None, "cache": ""}
        for i, (p, t) in enumerate(zip(predictions, truths, strict=True))
    ]
    chosen = ["accuracy", "f1_macro"]
    with write(rows, typed=False) as store:
        expected = reference(store, chosen, parse, "equal")
        streamed = aggregate.compute(store.conn, TABLE, WHERE, chosen, parse, "equal")
    assert json.loads(streamed["per_class"]).keys() == {"1", "1.0", "0.0", "-0.0", "a", " a"}
    assert streamed["accuracy"] == 6 / 7  # only the None prediction is wrong
    assert_same(streamed, expected)


# -- an independent reference: scikit-learn -----------------------------------------------------------


def _rows(predictions: list[Any], truths: list[Any]) -> list[dict[str, Any]]:
    return [
        {**WHERE, "cache_key": "k", "input_id": i, "prediction": p, "ground_truth": t, "error": None, "cache": ""}
        for i, (p, t) in enumerate(zip(predictions, truths, strict=True))
    ]


def test_classification_metrics_match_scikit_learn() -> None:
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

    rng = np.random.default_rng(7)
    truths = rng.choice(["cat", "dog", "eel", "fox"], 500).tolist()
    predictions = [t if rng.random() < 0.6 else str(rng.choice(["cat", "dog", "gnu"])) for t in truths]
    chosen = ["accuracy", "f1_macro", "precision_macro", "recall_macro"]
    with write(_rows(predictions, truths)) as store:
        got = aggregate.compute(store.conn, TABLE, WHERE, chosen, stored_prediction, "equal")
    classes = sorted(set(truths))  # macro over the ground-truth classes (a predicted-only label has no support)
    assert got["accuracy"] == pytest.approx(accuracy_score(truths, predictions), abs=1e-12)
    for name, score in (("f1_macro", f1_score), ("precision_macro", precision_score), ("recall_macro", recall_score)):
        expected = score(truths, predictions, labels=classes, average="macro", zero_division=0)
        assert got[name] == pytest.approx(expected, abs=1e-12), name


def test_regression_metrics_match_scikit_learn() -> None:
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    rng = np.random.default_rng(11)
    truths = rng.normal(1e4, 3.0, 400)
    predictions = truths + rng.normal(0, 1.5, 400)
    with write(_rows(predictions.tolist(), truths.tolist())) as store:
        got = aggregate.compute(store.conn, TABLE, WHERE, ["mae", "rmse", "r2"], stored_prediction, "equal")
    assert got["mae"] == pytest.approx(mean_absolute_error(truths, predictions), rel=1e-12)
    assert got["rmse"] == pytest.approx(math.sqrt(mean_squared_error(truths, predictions)), rel=1e-12)
    assert got["r2"] == pytest.approx(r2_score(truths, predictions), rel=1e-9)


# -- bounded memory: chunks, never the whole table ----------------------------------------------------


def test_rows_are_read_in_chunks_and_never_all_at_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No fetchall, and no fetchmany larger than CHUNK, on 2,500 rows read through the user's parse."""
    monkeypatch.setattr(aggregate, "CHUNK", 100)
    fetched: list[int] = []

    class Watched(sqlite3.Cursor):
        def fetchall(self) -> list[Any]:
            raise AssertionError("fetchall on the predictions")

        def fetchmany(self, size: int = 1) -> list[Any]:
            batch = super().fetchmany(size)
            fetched.append(len(batch))
            return batch

    class Watching(sqlite3.Connection):
        def execute(self, sql: str, parameters: Any = ()) -> sqlite3.Cursor:  # type: ignore[override]
            return self.cursor(Watched).execute(sql, parameters)

    rows = _rows([i % 3 for i in range(2500)], [i % 2 for i in range(2500)])
    for row in rows:
        row.update(raw_response=row["prediction"], latency=row["input_id"] / 1000)
    chosen = ["accuracy", "latency_p95"]
    with write(rows, tmp_path / "b.db") as store:
        expected = reference(store, chosen, raw_as_prediction, "equal")
    watched = sqlite3.connect(tmp_path / "b.db", factory=Watching)
    got = aggregate.compute(watched, TABLE, WHERE, chosen, raw_as_prediction, "equal")
    watched.close()
    assert_same(got, expected)
    assert fetched and max(fetched) <= 100
    assert sum(fetched) >= 2500  # every row went through the user's parse, in chunks


# -- in the harness: log_metrics, the printed table and the tag message ---------------------------------


def test_log_metrics_reads_no_row_list_and_matches_the_reference(toy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A toy run: the metrics rows, the printed table and the tag message never list the predictions."""
    from bench_harness._cli import main
    from bench_harness._core.config import load_config
    from bench_harness._results import metrics as toy_metrics
    from bench_harness._run import runner
    from bench_harness._storage import store as store_mod
    from bench_harness._versioning import versioning

    cfg = load_config()
    options = runner.RunOptions(experiment_version="e0.0.1", show_progress=False)
    real_latest_rows, real_compute = store_mod.Store.latest_rows, toy_metrics.compute

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the predictions were listed in Python")

    monkeypatch.setattr(store_mod.Store, "latest_rows", forbidden)
    monkeypatch.setattr(toy_metrics, "compute", forbidden)
    code, summary, rows = main.run_and_report(cfg, options)
    message = versioning.tag_message(rows, cfg.metrics, "abc123")
    assert code == 0 and len(rows) == 2
    assert "acc=1.0000" in message and "2 configs" in message  # parity is always right

    monkeypatch.setattr(store_mod.Store, "latest_rows", real_latest_rows)
    monkeypatch.setattr(toy_metrics, "compute", real_compute)
    from bench_harness._storage import keys

    with store_mod.Store(cfg.db_path) as store:
        for row, config in zip(rows, summary.configs, strict=True):
            where = {"experiment_version": "e0.0.1", "phase": "experiment", "config_id": keys.config_id(config)}
            expected = toy_metrics.compute(store.latest_rows(cfg.predictions_table, where), cfg.metrics)
            assert_same({k: row[k] for k in expected}, expected)


def test_default_parsing_reads_one_row_per_distinct_pair(monkeypatch: pytest.MonkeyPatch) -> None:
    """SQL groups the pairs: 3,000 rows of 3 labels (None and -0.0 included) reach Python as at most 9 pairs each."""
    seen: list[int] = []
    add = aggregate.Pairs.add

    def counting(self: aggregate.Pairs, predictions: Any, truths: Any, weights: Any = None) -> None:
        seen.append(len(predictions))
        add(self, predictions, truths, weights)

    monkeypatch.setattr(aggregate.Pairs, "add", counting)
    values = [None, -0.0, "a"]
    rows = _rows([values[i % 3] for i in range(3000)], [values[(i // 3) % 3] for i in range(3000)])
    with write(rows, typed=False) as store:
        expected = reference(store, ["accuracy", "f1_macro"], stored_prediction, "equal")
        got = aggregate.compute(store.conn, TABLE, WHERE, ["accuracy", "f1_macro"], stored_prediction, "equal")
    assert_same(got, expected)
    assert sum(seen) == 9
