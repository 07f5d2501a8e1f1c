"""The harness end to end on the toy benchmark (tests/toy.py), in-process: no render, no uv sync.

One computed row per (input, configuration), one metrics row per configuration, and a cache
that really prevents re-execution: in the same process, from a new process, invalidated by an
edit of predict(), and never holding an error. Transient errors are retried, permanent ones are
not; an interrupted run resumes without duplicates; `retry-errors` recomputes only error rows;
threads give the same table as serial; progress is a bar on a terminal and plain lines in a log.

These tests ran inside every rendered project (template/tests/test_harness_run.py.jinja) until
issue 12: they test the harness, not the user's code, so they now run once, here. The rendered
project keeps a smoke run on a slice of its own data (template/tests/test_harness_smoke.py.jinja).

The toy's predict is new-style (tests/toy.py PREDICT): it returns the prediction and the raw output,
or raises, and the harness owns the row envelope (_run/envelope.py); the wrappers below fail by raising
BenchmarkError with a category. Old-style full rows are tested in tests/test_envelope.py (and one here:
their error rows are not cached either).
"""

from __future__ import annotations

import dataclasses
import io
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import toy
from xetrack import Reader


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The toy benchmark, activated (BENCH_ROOT, sys.path), with its new-style predict."""
    root = toy.write_project(tmp_path / "toy")
    yield from toy.activate(root, monkeypatch)


# The harness's and the toy's modules, imported afresh for each test once the toy is activated.
H = SimpleNamespace()


@pytest.fixture(autouse=True)
def h(project: Path) -> SimpleNamespace:
    """Fill H with the harness modules and the toy's, imported after activation (fresh for each test)."""
    from toy_bench import predict as predict_module
    from toy_bench.data import load_items
    from toy_bench.params import grid

    from bench_harness import BenchmarkError
    from bench_harness._results import metrics
    from bench_harness._run import runner
    from bench_harness._run.progress import Progress
    from bench_harness._storage import keys
    from bench_harness._storage.duck import ensure_sqlite_extension
    from bench_harness._storage.store import Store

    H.__dict__.update(
        metrics=metrics, runner=runner, Progress=Progress, keys=keys, ensure_sqlite_extension=ensure_sqlite_extension,
        Store=Store, predict_module=predict_module, load_items=load_items, grid=grid, BenchmarkError=BenchmarkError,
    )  # fmt: skip
    return H


@pytest.fixture
def config(h: SimpleNamespace, tmp_path: Path):
    """The toy's configuration pointed at throw-away databases."""
    from bench_harness._core.config import load_config

    return dataclasses.replace(load_config(), db_path=tmp_path / "test.db", dev_db_path=tmp_path / "dev.db")


QUIET = {"show_progress": False, "executor": "serial"}


def counting_predict(calls: list):
    def predict(item, params):
        calls.append(item["input_id"])
        return H.predict_module.predict(item, params)

    return predict


def computed_rows(config) -> int:
    with H.Store(config.db_path) as store:
        table = config.predictions_table
        return store.query(f"SELECT COUNT(*) FROM \"{table}\" WHERE cache = ''")[0][0]


def test_end_to_end_one_row_per_input_and_configuration(config) -> None:
    summary = H.runner.run(config, H.runner.RunOptions(experiment_version="t1", **QUIET))
    logged = H.metrics.log_metrics(config, summary)
    expected = len(H.load_items()) * len(H.grid())
    assert summary.computed == expected and summary.errors == 0
    if config.engine == "duckdb":
        H.ensure_sqlite_extension()
    predictions = Reader(str(config.db_path), engine=config.engine, table=config.predictions_table).to_df()
    assert len(predictions) == expected
    assert predictions.groupby(["config_id", "input_id"]).size().max() == 1
    assert {"params_" + name for name in H.grid()[0].__dataclass_fields__} <= set(predictions.columns)
    table = Reader(str(config.db_path), engine=config.engine, table=config.metrics_table).to_df()
    assert len(table) == len(H.grid()) == len(logged)
    assert set(table["n"]) == {len(H.load_items())}
    for name in config.metrics:
        assert name in table.columns


def test_a_second_run_executes_no_prediction(config) -> None:
    first: list = []
    H.runner.run(config, H.runner.RunOptions(experiment_version="t1", **QUIET), predict_fn=counting_predict(first))
    again: list = []
    options = H.runner.RunOptions(experiment_version="t2", **QUIET)
    summary = H.runner.run(config, options, predict_fn=counting_predict(again))
    assert len(first) == len(H.load_items()) * len(H.grid())
    assert again == [] and summary.computed == 0
    assert summary.cache_hits == len(first)
    assert computed_rows(config) == len(first)


def test_the_cache_survives_a_new_process(config, tmp_path: Path) -> None:
    path = os.pathsep.join([str(toy.HARNESS_SRC), str(config.root / "src")])
    environment = {**os.environ, "BENCH_DB": str(config.db_path), "PYTHONHASHSEED": "random", "PYTHONPATH": path}
    command = [sys.executable, "-m", "bench_harness", "run", "--quiet", "--executor", "serial"]
    for _ in range(2):
        done = subprocess.run(command, env=environment, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, done.stderr
    assert " 0 computed" in done.stdout, done.stdout
    assert computed_rows(config) == len(H.load_items()) * len(H.grid())


def test_editing_predict_invalidates_the_cache(config, monkeypatch: pytest.MonkeyPatch) -> None:
    H.runner.run(config, H.runner.RunOptions(experiment_version="t1", **QUIET))
    monkeypatch.setattr(H.predict_module, "PREDICT_VERSION", "edited")
    summary = H.runner.run(config, H.runner.RunOptions(experiment_version="t2", **QUIET))
    assert summary.cache_hits == 0
    assert summary.computed == len(H.load_items()) * len(H.grid())


@pytest.mark.parametrize("style", ["raises", "old-style error row"])
def test_errors_are_never_cached(config, style: str) -> None:
    failing = H.load_items()[0]["input_id"]

    def flaky(item, params):
        if item["input_id"] != failing:
            return H.predict_module.predict(item, params)
        if style == "raises":
            raise H.BenchmarkError("boom", "INVALID_VALUE")
        full_row = {"input_id": item["input_id"], "ground_truth": item["label"], "latency": 0.0}
        return {**H.predict_module.predict(item, params), **full_row, "error": "boom", "error_type": "INVALID_VALUE"}

    H.runner.run(config, H.runner.RunOptions(experiment_version="t1", **QUIET), predict_fn=flaky)
    calls: list = []
    options = H.runner.RunOptions(experiment_version="t2", **QUIET)
    summary = H.runner.run(config, options, predict_fn=counting_predict(calls))
    assert sorted(set(calls)) == [failing] and len(calls) == len(H.grid())
    assert summary.cache_hits == (len(H.load_items()) - 1) * len(H.grid())


# Columns that legitimately differ between two runs of the same predictions.
VOLATILE = toy.RUN_VOLATILE_COLUMNS


def fast_retries(config, **run: Any):
    """The configuration with millisecond backoff, so retry tests take no time."""
    settings = {"backoff_base_seconds": 0.001, "backoff_max_seconds": 0.01, **run}
    return dataclasses.replace(config, run=dataclasses.replace(config.run, **settings))


def rows_of(config, version: str, table: str | None = None) -> list[dict]:
    with H.Store(config.db_path) as store:
        name = table or config.predictions_table
        return store.query_dicts(f'SELECT * FROM "{name}" WHERE experiment_version = ? ORDER BY rowid', [version])


def comparable(rows: list[dict]) -> list[dict]:
    """Rows without timing/environment columns, in a stable order."""
    kept = [{k: v for k, v in row.items() if k not in VOLATILE} for row in rows]
    return sorted(kept, key=lambda row: (row["config_id"], str(row["input_id"])))


def test_a_transient_error_is_retried_then_succeeds_and_is_not_cached(config) -> None:
    config = fast_retries(config)
    flaky_id = H.load_items()[0]["input_id"]
    calls: list = []

    def flaky(item, params):
        calls.append(item["input_id"])
        if item["input_id"] == flaky_id and calls.count(flaky_id) == 1:
            raise H.BenchmarkError("timed out", "API_TIMEOUT")
        return H.predict_module.predict(item, params)

    summary = H.runner.run(config, H.runner.RunOptions(experiment_version="t1", **QUIET), predict_fn=flaky)
    rows = [r for r in rows_of(config, "t1") if r["input_id"] == flaky_id]
    assert summary.errors == 0 and summary.retries == 1
    assert sorted(r["retry_count"] for r in rows) == [0] * (len(H.grid()) - 1) + [1]
    assert all(r["error"] is None for r in rows)
    assert calls.count(flaky_id) == len(H.grid()) + 1


def test_a_transient_error_that_persists_is_recorded_after_the_retries_and_recomputed(config) -> None:
    config = fast_retries(config, max_retries=2)
    failing = H.load_items()[0]["input_id"]

    def down(item, params):
        if item["input_id"] == failing:
            raise TimeoutError("the API did not answer")
        return H.predict_module.predict(item, params)

    summary = H.runner.run(config, H.runner.RunOptions(experiment_version="t1", **QUIET), predict_fn=down)
    rows = [r for r in rows_of(config, "t1") if r["input_id"] == failing]
    assert summary.errors == len(H.grid()) and summary.retries == 2 * len(H.grid())
    assert {(r["error_type"], r["retry_count"]) for r in rows} == {("API_TIMEOUT", 2)}
    calls: list = []
    H.runner.run(config, H.runner.RunOptions(experiment_version="t2", **QUIET), predict_fn=counting_predict(calls))
    assert sorted(set(calls)) == [failing]


def test_a_permanent_error_is_recorded_once_and_not_retried(config) -> None:
    config = fast_retries(config)
    failing = H.load_items()[0]["input_id"]
    calls: list = []

    def bad_item(item, params):
        calls.append(item["input_id"])
        if item["input_id"] == failing:
            raise H.BenchmarkError("no text", "MISSING_FIELD")
        return H.predict_module.predict(item, params)

    summary = H.runner.run(config, H.runner.RunOptions(experiment_version="t1", **QUIET), predict_fn=bad_item)
    rows = [r for r in rows_of(config, "t1") if r["input_id"] == failing]
    assert calls.count(failing) == len(H.grid()) and summary.retries == 0
    assert {(r["error_type"], r["retry_count"]) for r in rows} == {("MISSING_FIELD", 0)}


def test_an_interrupted_run_resumes_without_duplicates(config) -> None:
    config = dataclasses.replace(config, run=dataclasses.replace(config.run, write_batch_size=5))
    total = len(H.load_items()) * len(H.grid())
    stop_after = total // 2
    calls: list = []

    def interrupted(item, params):
        if len(calls) == stop_after:
            raise KeyboardInterrupt  # like Ctrl-C (the template's tests also SIGKILL a real run)
        calls.append(item["input_id"])
        return H.predict_module.predict(item, params)

    with pytest.raises(KeyboardInterrupt):
        H.runner.run(config, H.runner.RunOptions(experiment_version="t1", **QUIET), predict_fn=interrupted)
    recorded = len(rows_of(config, "t1"))
    assert 0 < recorded <= stop_after
    again: list = []
    options = H.runner.RunOptions(experiment_version="t1", use_cache=False, **QUIET)
    summary = H.runner.run(config, options, predict_fn=counting_predict(again))
    assert summary.resumed == recorded and len(again) == total - recorded
    pairs = [(r["config_id"], str(r["input_id"])) for r in rows_of(config, "t1")]
    assert len(pairs) == len(set(pairs)) == total


def test_rerunning_a_version_after_editing_predict_replaces_its_rows(config, monkeypatch: pytest.MonkeyPatch) -> None:
    """`make dev` twice with an edit in between: the same version, recomputed, still one row each."""
    H.runner.run(config, H.runner.RunOptions(experiment_version="t1", **QUIET))
    monkeypatch.setattr(H.predict_module, "PREDICT_VERSION", "edited")
    summary = H.runner.run(config, H.runner.RunOptions(experiment_version="t1", **QUIET))
    total = len(H.load_items()) * len(H.grid())
    assert summary.resumed == 0 and summary.computed == total
    rows = rows_of(config, "t1")
    assert len(rows) == total and {r["code_version"] for r in rows} == {"v:edited"}
    history = rows_of(config, "t1", table=config.predictions_table + "_error_history")
    assert len(history) == total and {r["moved_because"] for r in history} == {"stale"}


def test_retry_errors_recomputes_only_the_error_rows(config) -> None:
    failing = H.load_items()[1]["input_id"]

    def broken(item, params):
        if item["input_id"] == failing:
            raise H.BenchmarkError("bad value", "INVALID_VALUE")
        return H.predict_module.predict(item, params)

    H.runner.run(config, H.runner.RunOptions(experiment_version="t1", **QUIET), predict_fn=broken)
    before = {r["rowid"] for r in _with_rowid(config, "t1") if r["error"] is None}
    assert H.runner.latest_version(config) == "t1"
    calls: list = []
    options = H.runner.RunOptions(experiment_version="t1", only_errors=True, **QUIET)
    summary = H.runner.run(config, options, predict_fn=counting_predict(calls))
    assert sorted(set(calls)) == [failing] and summary.computed == len(H.grid()) == summary.tasks
    after = _with_rowid(config, "t1")
    assert before <= {r["rowid"] for r in after} and len(after) == len(H.load_items()) * len(H.grid())
    assert all(r["error"] is None for r in after)
    assert len(rows_of(config, "t1", table=config.predictions_table + "_error_history")) == len(H.grid())


def _with_rowid(config, version: str) -> list[dict]:
    with H.Store(config.db_path) as store:
        return store.query_dicts(
            f'SELECT rowid, error FROM "{config.predictions_table}" WHERE experiment_version = ?', [version]
        )


def test_every_row_carries_its_configuration_its_run_and_the_harness_columns(config) -> None:
    """What the writer stores: a configuration's shared columns (stored once per run, joined in
    SQLite) on each of its rows, an error row's extra column (its traceback) on that row only, the
    harness's own columns even when predict() returns (or fails with) the same names, and cache hits
    copied the same way."""
    failing = H.load_items()[0]["input_id"]
    clash = {"track_id": "predict's", "cache_key": "predict's"}

    def clashing(item, params):
        if item["input_id"] == failing:
            raise H.BenchmarkError("bad value", "INVALID_VALUE", **clash)
        return {**H.predict_module.predict(item, params), **clash}

    first = H.runner.run(config, H.runner.RunOptions(experiment_version="t1", **QUIET), predict_fn=clashing)
    again = H.runner.run(config, H.runner.RunOptions(experiment_version="t2", **QUIET))
    by_config = {H.keys.config_id(params): params for params in H.grid()}
    for summary in (first, again):
        rows = rows_of(config, summary.experiment_version)
        assert len(rows) == len(H.load_items()) * len(H.grid())
        for row in rows:
            params = by_config[row["config_id"]]
            assert {f"params_{k}": row[f"params_{k}"] for k in H.keys.params_dict(params)} == {
                f"params_{k}": v for k, v in H.keys.params_dict(params).items()
            }
            assert row["track_id"] == summary.track_ids[row["config_id"]]
            assert {k: row[k] for k in summary.metadata} == summary.metadata
            assert row["cache_key"] == H.keys.key_prefix(row["code_version"], row["config_id"]) + row["input_digest"]
            assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}", row["timestamp"]), row["timestamp"]
            failed_here = row["input_id"] == failing and summary is first
            assert (row["traceback"] is not None) == failed_here
            assert ("bad value" in row["traceback"]) if failed_here else True
        hits = [row for row in rows if row["cache"]]
        assert len(hits) == (summary.cache_hits if summary is again else 0)
    copied = {(r["config_id"], r["input_id"]): r for r in rows_of(config, "t1")}
    for hit in rows_of(config, "t2"):
        if hit["cache"]:
            source = copied[(hit["config_id"], hit["input_id"])]
            assert hit["cache"] == source["track_id"] and hit["prediction"] == source["prediction"]
            assert hit["function_time"] == 0


def test_threads_record_the_same_table_as_serial_with_system_params(config) -> None:
    config = dataclasses.replace(config, run=dataclasses.replace(config.run, log_system_params=True))
    H.runner.run(config, H.runner.RunOptions(experiment_version="serial", **QUIET))
    options = H.runner.RunOptions(experiment_version="threads", executor="threads", workers=4, use_cache=False)
    options.show_progress = False
    summary = H.runner.run(config, options)
    assert summary.computed == len(H.load_items()) * len(H.grid())
    serial, threads = rows_of(config, "serial"), rows_of(config, "threads")
    assert comparable(threads) == comparable(serial)
    assert all(row["cpu"] is not None and row["memory_percent"] is not None for row in threads)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_a_live_bar_on_a_terminal_and_plain_lines_in_a_log() -> None:
    terminal = _Terminal()
    bar = H.Progress(10, label="e0.0.1", stream=terminal, interval=0)
    bar.skip(2, cache_hits=2)
    bar.update(done=3, errors=1)
    bar.close()
    shown = terminal.getvalue()
    assert "\r" in shown and "[" in shown and "5/10" in shown
    for part in ("rows/s", "ETA", "errors 1", "cache hits 2"):
        assert part in shown

    log = io.StringIO()
    plain = H.Progress(10, label="e0.0.1", stream=log)
    plain.skip(0)
    plain.update(done=1)
    assert log.getvalue() == ""  # no 0/N line (nor any line) before the interval
    plain.update(done=9)
    plain.close()
    lines = log.getvalue().splitlines()
    assert lines[-1].startswith("e0.0.1 [") and "10/10" in lines[-1] and "\r" not in log.getvalue()
