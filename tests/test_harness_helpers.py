"""The harness helpers that issue 12 made one each (they had twins with different meanings):

* store.latest_version: the latest experiment version by version order among the harness's own
  rows (runner: `make retry-errors`; analysis, validate, rescore, report), not by rowid;
* store.column_names: a table's columns, on a connection or a database file;
* env.git / env.git_output: the one way git runs (checked for versioning, best effort for metadata);
* analysis.error_breakdown_sql: the error breakdown `make validate` prints and the report shows;
* store.PAGE_SIZE: the page size of a database the harness creates (issue 16: faster batch commits).

In-process on the toy benchmark, on small databases written here.
"""

from __future__ import annotations

import sqlite3
import subprocess
import time
from pathlib import Path

import duckdb
import pytest

HARNESS_COLUMNS = (
    "track_id",
    "timestamp",
    "config_id",
    "cache_key",
    "experiment_version",
    "phase",
    "error",
    "error_type",
)


def write(db: Path, rows: list[tuple]) -> Path:
    """A predictions table with the harness's own columns, rows in the order given (rowid order)."""
    with sqlite3.connect(db) as con:
        con.execute(f"CREATE TABLE IF NOT EXISTS predictions ({', '.join(HARNESS_COLUMNS)})")
        con.executemany(f"INSERT INTO predictions VALUES ({', '.join('?' * len(HARNESS_COLUMNS))})", rows)
    return db


def row(version: str, second: int, *, config: str | None = "c1", phase: str = "experiment", error=None) -> tuple:
    key = None if config is None else f"k-{version}-{second}"
    return ("t", f"2026-01-01 00:00:{second:02d}.000000", config, key, version, phase, error, "X" if error else None)


def test_the_latest_version_is_the_highest_tag_not_the_last_row_written(toy: Path, tmp_path: Path) -> None:
    from bench_harness._storage.store import latest_version

    db = write(tmp_path / "a.db", [row("e0.0.9", 1), row("e0.0.10", 2), row("e0.0.9", 3)])  # a retry of e0.0.9
    assert latest_version(db, "predictions") == "e0.0.10", "by number: e0.0.10 after e0.0.9, whatever the rowid"
    write(db, [row("e9.0.0", 4, config=None), row("e1.0.0", 5, phase="dev")])  # not the harness's; a dev run
    assert latest_version(db, "predictions", phase="experiment") == "e0.0.10"
    assert latest_version(db, "predictions") == "e1.0.0"
    assert latest_version(tmp_path / "missing.db", "predictions") is None
    assert latest_version(db, "no_such_table") is None


def test_free_version_names_are_ordered_by_their_first_row_and_tags_come_last(toy: Path, tmp_path: Path) -> None:
    from bench_harness._storage.store import latest_version

    db = write(tmp_path / "b.db", [row("zeta", 1), row("alpha", 2), row("zeta", 3)])
    assert latest_version(db, "predictions") == "alpha", "alpha began after zeta; zeta's retry does not count"
    write(db, [row("e0.0.1", 0)])
    assert latest_version(db, "predictions") == "e0.0.1"


def test_the_runner_retries_the_latest_experiment_version(toy: Path, tmp_path: Path) -> None:
    import dataclasses

    from bench_harness._core.config import load_config
    from bench_harness._run import runner

    cfg = dataclasses.replace(load_config(), db_path=tmp_path / "c.db")
    write(cfg.db_path, [row("e0.0.2", 1), row("e0.0.1", 2), row("e0.0.3", 3, phase="dev")])
    assert runner.latest_version(cfg) == "e0.0.2"


def test_column_names_on_a_file_a_connection_and_a_missing_database(toy: Path, tmp_path: Path) -> None:
    from bench_harness._storage.store import Store, column_names, column_types

    db = write(tmp_path / "d.db", [])
    assert column_names(db, "predictions") == list(HARNESS_COLUMNS)
    with sqlite3.connect(db) as con:
        assert column_names(con, "predictions") == list(HARNESS_COLUMNS)
        assert column_types(con, "predictions") == dict.fromkeys(HARNESS_COLUMNS, "")
    assert column_names(tmp_path / "none.db", "predictions") == [] and not (tmp_path / "none.db").exists()
    with Store(db) as store:
        assert list(store.columns("predictions")) == list(HARNESS_COLUMNS)


def test_git_raises_when_checked_and_metadata_gets_none_outside_a_repository(toy: Path, tmp_path: Path) -> None:
    from bench_harness._core import env
    from bench_harness._versioning import versioning

    assert versioning.git is env.git and versioning.VersioningError is env.ToolError
    outside = tmp_path / "not-a-repo"
    outside.mkdir()
    assert env.git_output(outside, "rev-parse", "HEAD") is None
    assert env.code_commit(outside) == "uncommitted"
    with pytest.raises(env.ToolError, match="rev-parse"):
        env.git(outside, "rev-parse", "HEAD")
    assert env.git(outside, "rev-parse", "HEAD", check=False).returncode != 0
    subprocess.run(["git", "init", "--quiet", str(outside)], check=True)
    assert env.git_output(outside, "rev-parse", "--is-inside-work-tree") == "true"


def test_one_error_breakdown_for_validate_and_the_report(toy: Path) -> None:
    from bench_harness._results.analysis import error_breakdown_sql, failed_sql

    con = duckdb.connect()
    con.execute("CREATE TABLE p (config_id TEXT, error TEXT, error_type TEXT)")
    rows = [("b", "slow", "API_TIMEOUT")] * 3 + [("a", "slow", "API_TIMEOUT")] * 3 + [("a", "bad", "PARSE_ERROR")]
    con.executemany("INSERT INTO p VALUES (?, ?, ?)", [*rows, ("a", None, None), ("a", "", None)])
    found = con.execute(error_breakdown_sql("p", ["config_id"], failed_sql())).fetchall()
    assert found == [("API_TIMEOUT", "a", 3), ("API_TIMEOUT", "b", 3), ("PARSE_ERROR", "a", 1)]
    shown = con.execute(error_breakdown_sql("p", ["config_id"], failed_sql(), example="error")).fetchall()
    assert shown[-1] == ("PARSE_ERROR", "a", 1, "bad")


def test_a_database_the_harness_creates_has_large_pages_and_an_existing_one_keeps_its_own(
    toy: Path, tmp_path: Path
) -> None:
    """store.PAGE_SIZE for the run's new database and a rebuilt one; an existing database is never rewritten."""
    from bench_harness._storage import versionfiles
    from bench_harness._storage.store import PAGE_SIZE, Store

    def page_size(db: Path) -> int:
        with sqlite3.connect(db) as con:
            return con.execute("PRAGMA page_size").fetchone()[0]

    assert PAGE_SIZE == 65536
    with Store(tmp_path / "new.db") as store:
        store.insert("predictions", [{"experiment_version": "e0.0.1", "input_id": 1}])
    older = tmp_path / "older.db"
    with sqlite3.connect(older) as con:
        con.execute("CREATE TABLE predictions (experiment_version TEXT, input_id INTEGER)")
    with Store(older) as store:
        store.insert("predictions", [{"experiment_version": "e0.0.1", "input_id": 2}])
    assert (page_size(tmp_path / "new.db"), page_size(older)) == (PAGE_SIZE, 4096)
    versionfiles.export_version(older, "e0.0.1", tmp_path / "results" / "e0.0.1.db")
    versionfiles.rebuild([tmp_path / "results" / "e0.0.1.db"], tmp_path / "rebuilt.db")
    assert page_size(tmp_path / "rebuilt.db") == PAGE_SIZE


def test_a_batch_written_right_after_another_gets_the_latest_system_values_not_a_zero_length_sample(toy) -> None:
    """A batch written less than one sampling interval after the previous one (the run's last rows) used
    an immediate sample: over a few milliseconds psutil reads 0 % CPU, and a configuration whose rows all
    fell in such a batch reported cpu_percent 0."""
    from bench_harness._run.monitor import SystemMonitor

    with SystemMonitor(interval=30) as monitor:  # no background sample within the test
        deadline = time.perf_counter() + 0.3
        while time.perf_counter() < deadline:  # busy: the process uses CPU
            sum(range(20_000))
        first = monitor.snapshot()  # since the priming sample: 0.3 s of CPU
        second = monitor.snapshot()  # right after: the same values, not a sample over microseconds
    assert first["cpu"] > 50 and first["memory_percent"] > 0
    assert second == first
