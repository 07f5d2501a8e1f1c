"""Every `xt` command the generated README shows works on the harness's database and leaves it unchanged.

xetrack's `xt` creates an empty `default` table when it is not given `--table` (and `xt stats` always
reads `default`), which would modify the DVC-tracked database: the README shows only safe commands.
"""

from __future__ import annotations

import hashlib
import shlex
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
from conftest import VENV_BIN, render, run


def documented_xt_commands(readme: str) -> list[list[str]]:
    """The `uv run xt ...` lines of the README's code blocks, as argument lists."""
    return [shlex.split(line)[3:] for line in readme.splitlines() if line.startswith("uv run xt ")]


def fingerprint(db: Path) -> tuple[str, list[str]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        tables = sorted(r[0] for r in con.execute("SELECT name FROM sqlite_master"))
    return hashlib.sha256(db.read_bytes()).hexdigest(), tables


@pytest.fixture
def harness_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A database the harness wrote: two experiments of the toy benchmark."""
    import toy

    root = toy.write_project(tmp_path / "toy", files={"predict": toy.OLD_STYLE_PREDICT})
    db = toy.record_experiments(root, monkeypatch)
    from bench_harness._storage.duck import ensure_sqlite_extension

    ensure_sqlite_extension()
    return db


@pytest.mark.parametrize("engine", ["duckdb", pytest.param("sqlite", marks=pytest.mark.slow)])
def test_documented_xt_commands_read_without_changing_the_database(
    tmp_path: Path, harness_db: Path, engine: str
) -> None:
    project = render(tmp_path / "project", {"engine": engine}, tasks=False)
    commands = documented_xt_commands((project / "README.md").read_text())
    assert len(commands) >= 5, "the README shows head, tail, columns, ls and sql"
    assert all("--table" in command for command in commands), "every xt example names its table"
    db = project / "benchmark.db"
    shutil.copy(harness_db, db)
    before = fingerprint(db)
    outputs = []
    for command in commands:
        outputs.append(run(project, str(VENV_BIN / "xt"), *command, timeout=120).stdout)
        assert fingerprint(db) == before, f"xt {' '.join(command)} changed the database"
    listed = outputs[3]  # xt ls ... experiment_version --unique
    assert "e0.0.1" in listed and "e0.0.2" in listed, listed


def test_xt_without_table_would_have_written_a_default_table(tmp_path: Path, harness_db: Path) -> None:
    """Why the README insists on --table: this check fails if xetrack stops doing it (then relax the README)."""
    db = tmp_path / "copy.db"
    shutil.copy(harness_db, db)
    subprocess.run([str(VENV_BIN / "xt"), "head", str(db)], capture_output=True, stdin=subprocess.DEVNULL, timeout=120)
    assert "default" in fingerprint(db)[1]
