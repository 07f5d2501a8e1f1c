"""Failures a user can fix print one line with the fix, exit 2, and lose nothing (issue 14 rows 10 and 14)."""

from __future__ import annotations

import errno
import json
import sqlite3
from pathlib import Path

import pytest


def write_items(root: Path, rows: list[dict]) -> None:
    (root / "data" / "sample.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_an_empty_dataset_is_refused_before_any_work(toy: Path, capsys: pytest.CaptureFixture) -> None:
    from bench_harness._cli.main import main

    write_items(toy, [])
    assert main(["run", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "no items" in err and "Traceback" not in err
    assert not (toy / "benchmark.db").exists()


def test_repeated_ids_are_refused_with_their_lines(toy: Path, capsys: pytest.CaptureFixture) -> None:
    from bench_harness._cli.main import main

    write_items(toy, [{"input_id": 1, "x": 1, "label": 1}, {"input_id": 1, "x": 2, "label": 0}])
    assert main(["run", "--quiet"]) == 2
    assert "input_id '1' appears 2 times (lines 1, 2)" in capsys.readouterr().err


def test_a_missing_data_file_names_the_file(toy: Path, capsys: pytest.CaptureFixture) -> None:
    from bench_harness._cli.main import main

    (toy / "data" / "sample.jsonl").unlink()
    assert main(["run", "--quiet"]) == 2
    assert "sample.jsonl does not exist" in capsys.readouterr().err


@pytest.mark.parametrize(
    "error, expected",
    [
        (OSError(errno.ENOSPC, "No space left on device", "benchmark.db"), "no space left"),
        (PermissionError(errno.EACCES, "Permission denied", "data/x.jsonl"), "permission denied (data/x.jsonl)"),
        (sqlite3.OperationalError("attempt to write a readonly database"), "read-only"),
        (sqlite3.OperationalError("database is locked"), "locked by another program"),
    ],
)
def test_known_failures_map_to_a_message_with_the_fix(toy: Path, error: Exception, expected: str) -> None:
    from bench_harness._cli.errors import plain_message

    assert expected in (plain_message(error) or "")


def test_a_bug_keeps_its_traceback(toy: Path) -> None:
    from bench_harness._cli.errors import plain_message

    assert plain_message(sqlite3.OperationalError("no such column: x")) is None
    assert plain_message(OSError(errno.EIO, "I/O error")) is None


def test_duckdb_reads_a_project_whose_path_holds_a_quote(tmp_path: Path, toy: Path) -> None:
    from bench_harness._storage.duck import connect

    folder = tmp_path / "o'brien"
    folder.mkdir()
    db = folder / "bench.db"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE t (x INTEGER)")
        con.execute("INSERT INTO t VALUES (41)")
    duck = connect(db)
    try:
        assert duck.execute("SELECT x + 1 FROM db.t").fetchone() == (42,)
    finally:
        duck.close()
