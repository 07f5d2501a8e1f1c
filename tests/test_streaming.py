"""The streaming runner (issue 16): load_items() may yield; the run works in bounded chunks.

In-process, on the toy project with CHUNK_TASKS set to 10 (5 items x 2 configurations a chunk), so
a few dozen items cross many chunk boundaries: the same tables as a list, resume after a kill,
cache hits, the error-rate stop, and a generator that is never read far ahead of the work.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import toy

ITEMS = 30  # x 2 configurations = 60 tasks, 6 chunks of 10
CHUNK = 10

GENERATOR_DATA = '''
"""Toy data as a generator: one pass per call, counting what it has handed out."""

from bench_harness import dataset

CALLS = []  # per call of load_items: {"yielded": n}


def load_items(limit=None):
    state = {"yielded": 0}
    CALLS.append(state)
    for number, record in enumerate(dataset()):
        if limit is not None and number >= limit:
            return
        state["yielded"] += 1
        yield dict(record)
'''


def project(tmp_path: Path, name: str, generator: bool, n: int = ITEMS) -> Path:
    files = {"data": GENERATOR_DATA} if generator else {}
    return toy.write_project(tmp_path / name, items=toy.sample_items(n), files=files)


def run(
    root: Path,
    monkeypatch: pytest.MonkeyPatch,
    versions: tuple[str, ...] = ("t1",),
    predict_fn: Any = None,
    **run_settings: Any,
) -> list[Any]:
    """Run the toy at `root` once per version with chunks of CHUNK tasks: the summaries."""
    import dataclasses

    summaries = []
    for _ in toy.activate(root, monkeypatch):
        from bench_harness._core.config import load_config
        from bench_harness._run import runner

        monkeypatch.setattr(runner, "CHUNK_TASKS", CHUNK, raising=False)
        cfg = load_config()
        cfg = dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, **run_settings))
        for version in versions:
            options = runner.RunOptions(experiment_version=version, show_progress=False)
            try:
                summaries.append(runner.run(cfg, options, predict_fn=predict_fn))
            except KeyboardInterrupt:
                summaries.append(None)
    return summaries


def table(root: Path, volatile: frozenset[str] = toy.RUN_VOLATILE_COLUMNS) -> list[tuple]:
    """The predictions table without run-volatile columns, sorted (column names first)."""
    with sqlite3.connect(root / "benchmark.db") as con:
        cursor = con.execute("SELECT * FROM predictions")
        names = [d[0] for d in cursor.description]
        keep = [i for i, name in enumerate(names) if name not in volatile]
        rows = sorted(tuple(str(row[i]) for i in keep) for row in cursor.fetchall())
    return [tuple(names[i] for i in keep), *rows]


def toy_predict() -> Any:
    """The toy's own rule (what predict.py computes), as a function the test can wrap."""

    def predict(item: dict[str, Any], params: Any) -> dict[str, Any]:
        value = (item["x"] + params.offset) % 2 if params.model_name == "parity" else 0
        return {"prediction": value, "raw_response": f"answer={value}"}

    return predict


def test_a_generator_records_the_same_tables_as_a_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    listed, generated = project(tmp_path, "list", False), project(tmp_path, "gen", True)
    (from_list,) = run(listed, monkeypatch)
    (from_generator,) = run(generated, monkeypatch)
    assert from_generator.tasks == from_list.tasks == ITEMS * 2  # the progress total, counted without len()
    assert from_generator.computed == ITEMS * 2
    assert table(generated) == table(listed)
    assert len(table(generated)) == ITEMS * 2 + 1


def test_a_generator_is_never_read_far_ahead_of_the_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Would fail on a runner that lists the items: at the first predict() the second pass holds 400 items."""
    root = project(tmp_path, "gen", True, n=400)
    seen: list[int] = []
    inner = toy_predict()

    def predict(item: dict[str, Any], params: Any) -> dict[str, Any]:
        import toy_bench.data as data

        seen.append(data.CALLS[-1]["yielded"])
        return inner(item, params)

    (summary,) = run(root, monkeypatch, predict_fn=predict)
    assert summary.computed == 800
    # Two passes (check and count, then run); during the run at most a chunk (5 items) + the next is read ahead.
    assert max(seen) == 400 and seen[0] <= 2 * CHUNK // 2
    assert all(yielded - number // 2 <= CHUNK for number, yielded in enumerate(seen))


def test_a_killed_run_resumes_across_chunks_without_recomputing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = project(tmp_path, "gen", True)
    inner, calls = toy_predict(), []

    def killed_after_23(item: dict[str, Any], params: Any) -> dict[str, Any]:
        calls.append((item["input_id"], params.model_name))
        if len(calls) > 23:
            raise KeyboardInterrupt("kill")
        return inner(item, params)

    (killed,) = run(root, monkeypatch, predict_fn=killed_after_23, write_batch_size=5)
    assert killed is None
    recorded = len(table(root)) - 1
    assert 0 < recorded <= 23
    calls.clear()
    (resumed,) = run(root, monkeypatch, predict_fn=lambda item, params: calls.append(0) or inner(item, params))
    assert resumed.resumed == recorded and resumed.computed == ITEMS * 2 - recorded == len(calls)
    assert len(table(root)) - 1 == ITEMS * 2  # one row per (input, configuration): nothing twice


def test_cache_hits_and_misses_across_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = project(tmp_path, "gen", True)
    run(root, monkeypatch, versions=("t1",))
    with sqlite3.connect(root / "benchmark.db") as con:  # forget 7 computed rows: only they are computed again
        con.execute("DELETE FROM predictions WHERE rowid IN (3, 11, 12, 29, 40, 51, 60)")
    calls: list[int] = []
    inner = toy_predict()
    (again,) = run(root, monkeypatch, versions=("t2",), predict_fn=lambda i, p: calls.append(0) or inner(i, p))
    assert (again.cache_hits, again.computed, len(calls)) == (ITEMS * 2 - 7, 7, 7)
    with sqlite3.connect(root / "benchmark.db") as con:
        copies = con.execute("SELECT COUNT(*) FROM predictions WHERE experiment_version = 't2' AND cache != ''")
        assert copies.fetchone()[0] == ITEMS * 2 - 7
        keys_t2 = con.execute(
            "SELECT COUNT(DISTINCT config_id || input_id) FROM predictions WHERE experiment_version='t2'"
        )
        assert keys_t2.fetchone()[0] == ITEMS * 2


def test_the_error_rate_stops_a_run_across_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = project(tmp_path, "gen", True)
    inner = toy_predict()

    def failing_from_item_10(item: dict[str, Any], params: Any) -> dict[str, Any]:
        if item["input_id"] >= 10:
            raise ValueError("broken")
        return inner(item, params)

    (summary,) = run(root, monkeypatch, predict_fn=failing_from_item_10, max_error_rate=0.3, min_rows_for_error_stop=10)
    assert summary.stopped_early
    # 20 good rows (items 0-9 x 2), then errors: the rate passes 30% at the 9th error (9 / 29).
    assert (summary.computed, summary.errors) == (29, 9)
    assert len(table(root)) - 1 == 29


def test_repeated_ids_from_a_generator_are_refused_with_their_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = toy.sample_items(8)
    items[6]["input_id"] = 2
    root = toy.write_project(tmp_path / "gen", items=items, files={"data": GENERATOR_DATA})
    for _ in toy.activate(root, monkeypatch):
        from bench_harness._core.config import load_config
        from bench_harness._core.datafiles import DataError
        from bench_harness._run import runner

        with pytest.raises(DataError, match=r"input_id '2' appears 2 times \(lines 3, 7\)"):
            runner.run(load_config(), runner.RunOptions(experiment_version="t1", show_progress=False))
        assert not (root / "benchmark.db").exists() or not table(root)[1:]


def test_check_items_streams_hashes_not_ids() -> None:
    import sys

    sys.path.insert(0, str(toy.HARNESS_SRC))
    from bench_harness._core.datafiles import DataError, check_items

    def items() -> Iterator[dict[str, Any]]:
        yield from ({"input_id": f"id-{i}"} for i in range(50_000))

    assert check_items(items(), None, again=items) == 50_000
    with pytest.raises(DataError, match="without an input_id: items 3 of load_items"):
        check_items(iter([{"input_id": 1}, {"input_id": 2}, {"x": 1}]))
    with pytest.raises(DataError, match="no items"):
        check_items(iter([]))


def test_recorded_as_planned_streams_the_keys_of_a_repeat(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What `make experiment` asks before skipping a repeat: every planned key recorded without error, no more."""
    root = project(tmp_path, "gen", True)
    run(root, monkeypatch, versions=("t1",))
    for _ in toy.activate(root, monkeypatch):
        from bench_harness._core.config import load_config
        from bench_harness._run import runner

        monkeypatch.setattr(runner, "CHUNK_TASKS", CHUNK, raising=False)
        cfg = load_config()
        assert runner.recorded_as_planned(cfg, "t1")
        assert not runner.recorded_as_planned(cfg, "t2")
        with sqlite3.connect(cfg.db_path) as con:
            con.execute("UPDATE predictions SET error = 'x' WHERE rowid = 37")
        assert not runner.recorded_as_planned(cfg, "t1")
        with sqlite3.connect(cfg.db_path) as con:
            con.execute("UPDATE predictions SET error = NULL WHERE rowid = 37")
            con.execute("INSERT INTO predictions SELECT * FROM predictions WHERE rowid = 5")
        assert not runner.recorded_as_planned(cfg, "t1")  # one row more than planned


HANGS_ON_3 = '''
"""Toy predict that hangs on input 3, and swallows ordinary exceptions around the hang."""

import threading
import time

PREDICT_VERSION = None
THREADS = []  # the thread each call ran in


def predict(item, params):
    THREADS.append(threading.current_thread().name)
    if item["input_id"] == 3:
        try:
            time.sleep(3600)
        except Exception:  # noqa: BLE001 - a user's broad except must not defeat the timeout
            pass
    value = item["x"] % 2 if params.model_name == "parity" else 0
    return {"prediction": value, "raw_response": str(value)}
'''


def timed_out(root: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, list[str], list[tuple]]:
    """A serial run with a 0.3 s timeout: the summary, the threads predict ran in, the TIMEOUT rows."""
    import dataclasses

    for _ in toy.activate(root, monkeypatch):
        import toy_bench.predict as predict

        from bench_harness._core.config import load_config
        from bench_harness._run import runner

        cfg = load_config()
        cfg = dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, task_timeout_seconds=0.3))
        summary = runner.run(cfg, runner.RunOptions(experiment_version="t1", show_progress=False))
        threads = list(predict.THREADS)
    with sqlite3.connect(root / "benchmark.db") as con:
        failed = con.execute("SELECT input_id, error_type FROM predictions WHERE error IS NOT NULL").fetchall()
    return summary, threads, failed


def test_a_serial_timeout_interrupts_the_call_in_the_main_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import signal
    import threading

    root = toy.write_project(tmp_path / "hang", items=toy.sample_items(6), files={"predict": HANGS_ON_3})
    before = signal.getsignal(signal.SIGALRM)
    summary, threads, failed = timed_out(root, monkeypatch)
    assert summary.computed == 12 and sorted(failed) == [(3, "TIMEOUT"), (3, "TIMEOUT")]
    assert set(threads) == {threading.main_thread().name}  # no watched thread: one interval timer
    assert signal.getsignal(signal.SIGALRM) == before and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_a_serial_timeout_falls_back_to_a_thread_when_sigalrm_is_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import signal

    def users_handler(signum: int, frame: object) -> None:
        raise AssertionError("the run must not fire the user's SIGALRM handler")

    root = toy.write_project(tmp_path / "hang", items=toy.sample_items(6), files={"predict": HANGS_ON_3})
    previous = signal.signal(signal.SIGALRM, users_handler)
    try:
        summary, threads, failed = timed_out(root, monkeypatch)
        assert signal.getsignal(signal.SIGALRM) is users_handler
    finally:
        signal.signal(signal.SIGALRM, previous)
    assert summary.computed == 12 and sorted(failed) == [(3, "TIMEOUT"), (3, "TIMEOUT")]
    assert set(threads) == {"predict"}


def cached_rows(config: str, input_id: Any, **changes: Any) -> dict[str, Any]:
    row = {"track_id": "t1", "config_id": config, "code_version": "v1", "input_id": input_id}
    return {
        **row,
        "input_digest": f"d{input_id}",
        "cache": "",
        "error": None,
        "experiment_version": "e0.0.1",
        **changes,
    }


def test_the_id_range_read_finds_exactly_the_hits_of_one_probe_per_task(toy: Path, tmp_path: Path) -> None:
    """store.RunRecorder: integer ids read as one range of the cache's index give the probes' hits, the
    oldest row of a repeat included; other ids, another column type and a sparse range probe instead."""
    from bench_harness._storage.store import RunRecorder, Store

    rows = [cached_rows(config, i) for config in ("ca", "cb") for i in range(0, 300, 3)]
    rows += [
        cached_rows("ca", 30, track_id="t2"),
        cached_rows("ca", 61, error="boom"),
        cached_rows("ca", 91, cache="t0"),
    ]
    rows += [cached_rows("ca", 121, code_version="v0"), cached_rows("cb", 151, input_digest="edited")]
    with Store(tmp_path / "cache.db") as store:
        store.insert("predictions", rows)
        recorder = RunRecorder(store, "predictions", [{"config_id": "ca"}, {"config_id": "cb"}])
        wanted = [(config, i, f"d{i}") for config in ("cb", "ca") for i in range(200)] + [("ca", 33, "other")]
        by_range, by_probes = recorder._hits_in_id_range(wanted, "v1"), recorder._hits_by_probes(wanted, "v1")
        assert by_range == by_probes
        found = {wanted[position][:2]: rowid for position, rowid in by_range}
        assert found[("ca", 30)] == 11, "the oldest of two cached rows (rowid 11, not the later t2 row)"
        assert not {("ca", 61), ("ca", 91), ("ca", 121), ("cb", 151)} & found.keys()
        assert by_range[-1][0] < len(wanted) - 1, "an edited input (another digest) is not a hit"
        assert len(found) == 2 * 67  # ids 0..198 step 3, for each configuration
        assert recorder._hits_in_id_range([("ca", 0, "d0"), ("ca", 10**9, "d")], "v1") is None, "a sparse range"
        assert recorder._hits_in_id_range([("ca", "3", "d3")], "v1") is None, "an id that is not an int"
        assert recorder._hits_in_id_range([("ca", True, "d1")], "v1") is None, "a bool is not an id SQLite stores"
    with Store(tmp_path / "text-ids.db") as store:
        store.insert("predictions", [cached_rows("ca", "q1"), cached_rows("ca", 7)])  # the column is TEXT
        recorder = RunRecorder(store, "predictions", [{"config_id": "ca"}])
        assert recorder._hits_in_id_range([("ca", 7, "d7")], "v1") is None
        assert len(recorder._hits_by_probes([("ca", 7, "d7")], "v1")) == 1


def declared_types(con: sqlite3.Connection, columns: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """{(table, column): its declared type}."""
    sql = 'SELECT type FROM pragma_table_info("{}") WHERE name = ?'
    return {(table, column): con.execute(sql.format(table), (column,)).fetchone()[0] for table, column in columns}


def test_a_column_first_written_without_a_value_takes_the_type_of_its_first_value(toy: Path, tmp_path: Path) -> None:
    """A batch flushed before any row had a value (a spread only some configurations compute, written a
    second before they ran) made the column TEXT, and every later number was stored as text: metrics
    found none. While the column holds only NULLs, its first value gives it its type (both write paths)."""
    from bench_harness._storage.store import RunRecorder, Store

    db = tmp_path / "typed.db"
    with Store(db) as store:
        store.ensure_table("predictions")
        recorder = RunRecorder(store, "predictions", [{"config_id": "ridge"}, {"config_id": "forest"}])
        names = ("input_id", "prediction_std", "note")
        recorder.write({names: [(0, 1, None, None), (0, 2, None, None)]})
        recorder.write({names: [(1, 1, 0.5, "wide"), (1, 2, 1.5, None)]})
        store.insert("metrics", [{"config_id": "ridge", "prediction_std": None, "n": None}])
        store.insert("metrics", [{"config_id": "forest", "prediction_std": 1.0, "n": "2"}])
        store.insert("history", [{"config_id": "ridge", "spread": "wide"}])
        store.insert("history", [{"config_id": "forest", "spread": 2.0}])  # the column had text: it stays TEXT
    con = sqlite3.connect(db)
    declared = declared_types(
        con, [("predictions", "prediction_std"), ("predictions", "note"), ("metrics", "prediction_std"),
              ("metrics", "n"), ("history", "spread")]
    )  # fmt: skip
    assert declared == {
        ("predictions", "prediction_std"): "REAL",
        ("predictions", "note"): "TEXT",
        ("metrics", "prediction_std"): "REAL",
        ("metrics", "n"): "TEXT",
        ("history", "spread"): "TEXT",
    }
    stored = con.execute("SELECT config_id, input_id, typeof(prediction_std) FROM predictions ORDER BY rowid")
    rows = [("ridge", 1, "null"), ("ridge", 2, "null"), ("forest", 1, "real"), ("forest", 2, "real")]
    assert stored.fetchall() == rows
    assert con.execute("SELECT typeof(prediction_std) FROM metrics ORDER BY rowid").fetchall() == [("null",), ("real",)]
    con.close()


def test_a_column_a_killed_run_left_without_a_value_takes_the_type_of_the_resumed_runs_first_value(
    toy: Path, tmp_path: Path
) -> None:
    """The run was killed after its first batch, which had no value for the column (TEXT, all NULL): the
    resumed run, another process and connection, still gives the column its first value's type, in both
    write paths. A column the killed run wrote text into stays TEXT."""
    from bench_harness._storage.store import RunRecorder, Store

    db = tmp_path / "typed.db"
    configurations = [{"config_id": "ridge"}, {"config_id": "forest"}]
    names = ("input_id", "prediction_std", "note")
    with Store(db) as killed:
        killed.ensure_table("predictions")
        RunRecorder(killed, "predictions", configurations).write({names: [(0, 1, None, "wide"), (0, 2, None, None)]})
        killed.insert("metrics", [{"config_id": "ridge", "prediction_std": None}])
    with Store(db) as resumed:
        RunRecorder(resumed, "predictions", configurations).write({names: [(1, 1, 0.5, 2.0), (1, 2, 1.5, None)]})
        resumed.insert("metrics", [{"config_id": "forest", "prediction_std": 1.0}])
        assert resumed.typeless("predictions") == set(), "every column settled: later batches take the fast path"
    con = sqlite3.connect(db)
    declared = declared_types(
        con, [("predictions", "prediction_std"), ("predictions", "note"), ("metrics", "prediction_std")]
    )
    assert declared == {
        ("predictions", "prediction_std"): "REAL",
        ("predictions", "note"): "TEXT",
        ("metrics", "prediction_std"): "REAL",
    }
    stored = con.execute("SELECT typeof(prediction_std) FROM predictions WHERE config_id = 'forest'").fetchall()
    assert stored == [("real",), ("real",)]
    assert con.execute("SELECT typeof(prediction_std) FROM metrics ORDER BY rowid").fetchall() == [("null",), ("real",)]
    con.close()
