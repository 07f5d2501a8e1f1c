"""Reproducibility in generated projects: tags per experiment, DVC, reproduce, schema drift, dirty trees.

Every command runs with stdin closed (conftest.run), so any prompt would fail the test instead of
hanging. Each test leaves its project on `main` with a clean tree, and expects only that: the
tests of one project can run in any order.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
from pathlib import Path

import pytest
from conftest import make, run

STANDARD = ("versioning-standard", {"project_name": "vstd"})  # engine duckdb (the default), local DVC remote
MINIMAL = ("versioning-minimal", {"project_name": "vmin", "versioning": "minimal", "engine": "sqlite"})
MESSAGE = re.compile(r"^model=\w+ \| acc=\d\.\d{4} \| data=[0-9a-f]{7} \| 3 configs$")


@pytest.fixture(scope="module")
def standard(rendered) -> Path:
    return rendered(*STANDARD)


@pytest.fixture(scope="module")
def minimal(rendered) -> Path:
    return rendered(*MINIMAL)


def git(project: Path, *args: str, check: bool = True) -> str:
    return run(project, "git", *args, check=check).stdout.strip()


def tags(project: Path) -> list[str]:
    return git(project, "tag", "-l", "e*", "--sort=version:refname").split()


def dump(db: Path) -> dict[str, list[tuple]]:
    """Every row of every table, in rowid order."""
    with sqlite3.connect(db) as con:
        names = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        return {t: con.execute(f'SELECT * FROM "{t}" ORDER BY rowid').fetchall() for t in names}


def query(db: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as con:
        return con.execute(sql).fetchall()


def columns(db: Path, table: str) -> list[str]:
    return [r[1] for r in query(db, f'PRAGMA table_info("{table}")')]


def rename_seed(project: Path, package: str) -> None:
    """A user renames the Params field `seed` to `random_seed` (and its use in predict.py)."""
    for name in ("params.py", "predict.py"):
        path = project / "src" / package / name
        path.write_text(re.sub(r"\bseed\b", "random_seed", path.read_text()))


def back_to_main(project: Path) -> None:
    """After `make reproduce`: return to main and its own database version."""
    git(project, "switch", "--quiet", "main")
    run(project, "uv", "run", "--quiet", "dvc", "pull", "--quiet", "--force")


@pytest.mark.slow
def test_two_experiments_are_tagged_and_the_first_is_reproduced_row_for_row(standard: Path, tmp_path: Path) -> None:
    db = standard / "benchmark.db"
    before = tags(standard)
    first = make(standard, "experiment")
    snapshot = tmp_path / "first.db"
    shutil.copy(db, snapshot)
    make(standard, "experiment")
    new = tags(standard)[len(before) :]
    n = len(before)
    assert new == [f"e0.0.{n + 1}", f"e0.0.{n + 2}"], new
    assert f"tagged e0.0.{n + 1}: model=" in first.stdout
    data_commit = git(standard, "log", "-n", "1", "--pretty=format:%h", "--", "data.dvc")
    for tag in new:
        assert git(standard, "cat-file", "-t", tag) == "tag", "an annotated tag"
        message = git(standard, "tag", "-l", tag, "--format=%(contents:subject)")
        assert MESSAGE.match(message), message
        assert message.split(" | ")[2] == f"data={data_commit}"
        # every row of both tables carries the version, the code commit and the data commit
        for table in ("predictions", "metrics"):
            rows = query(db, f"SELECT code_commit, data_commit FROM {table} WHERE experiment_version = '{tag}'")
            assert rows and all(code not in (None, "", "uncommitted") for code, _ in rows)
            assert {data for _, data in rows} == {data_commit}
    listed = make(standard, "experiments").stdout
    assert re.search(rf"^e0\.0\.{n + 2}\s+model=", listed, re.MULTILINE), listed
    assert git(standard, "status", "--porcelain") == "", "the results commit leaves a clean tree"

    make(standard, "push")
    db.unlink()
    shutil.rmtree(standard / ".dvc" / "cache")  # only the remote holds the results now
    done = make(standard, "reproduce", f"TAG=e0.0.{n + 1}")
    assert "pulled" in done.stdout
    assert git(standard, "describe", "--tags", "--exact-match") == f"e0.0.{n + 1}"
    assert dump(db) == dump(snapshot), "the first experiment's database, row for row"
    back_to_main(standard)
    assert query(db, f"SELECT COUNT(*) FROM metrics WHERE experiment_version = 'e0.0.{n + 2}'")[0][0] == 3


@pytest.mark.slow
def test_a_renamed_param_is_caught_by_the_hook_and_the_experiment_then_renamed_in_place(standard: Path) -> None:
    db = standard / "benchmark.db"
    if not tags(standard):
        make(standard, "experiment")
    rename_seed(standard, "vstd")
    git(standard, "add", "-A")
    commit = run(standard, "git", "commit", "-m", "rename seed", check=False)
    assert commit.returncode != 0
    output = commit.stdout + commit.stderr
    assert re.search(r"schema-drift\n- exit code: 1", output) or "hook id: schema-drift" in output, output
    assert "uv run bench check-schema --rename params_seed=params_random_seed" in output

    refused = make(standard, "experiment", check=False)
    assert refused.returncode == 2
    assert "--rename params_seed=params_random_seed" in refused.stderr
    assert "uncommitted changes" in refused.stderr

    make(standard, "check-schema", "RENAME=seed=random_seed")
    git(standard, "commit", "--quiet", "-m", "rename seed")  # the hook passes now
    make(standard, "experiment")
    for table in ("predictions", "metrics"):
        names = columns(db, table)
        assert "params_random_seed" in names and "params_seed" not in names
        sql = f"SELECT COUNT(DISTINCT experiment_version), COUNT(*) - COUNT(params_random_seed) FROM {table}"
        versions, nulls = query(db, sql)[0]
        assert versions >= 2 and nulls == 0, "old and new rows share one column"


@pytest.mark.slow
def test_uncommitted_code_or_data_stop_the_experiment_and_allow_dirty_records_it(standard: Path) -> None:
    db = standard / "benchmark.db"
    readme = standard / "README.md"
    readme.write_text(readme.read_text() + "\nnotes\n")
    refused = make(standard, "experiment", check=False)
    assert refused.returncode == 2
    assert "uncommitted changes" in refused.stderr and "M README.md" in refused.stderr
    assert "--allow-dirty" in refused.stderr

    make(standard, "experiment", "ARGS=--allow-dirty")
    version = tags(standard)[-1]
    assert git(standard, "tag", "-l", version, "--format=%(contents:subject)").endswith(" | dirty")
    for table in ("predictions", "metrics"):
        flags = query(db, f"SELECT DISTINCT git_dirty FROM {table} WHERE experiment_version = '{version}'")
        assert flags == [(1,)]
    git(standard, "checkout", "--", "README.md")

    data = next((standard / "data").iterdir())
    data.write_text(data.read_text() + data.read_text().splitlines()[-1] + "\n")
    refused = make(standard, "preflight", check=False)
    assert refused.returncode == 2 and "data/ differs from data.dvc" in refused.stderr
    run(standard, "uv", "run", "--quiet", "dvc", "checkout", "--quiet", "--force", "data.dvc")
    make(standard, "preflight")


@pytest.mark.slow
def test_pre_commit_keeps_data_and_conflict_markers_out_of_git(standard: Path) -> None:
    (standard / "notes.md").write_text("<<<<<<< before updating\nmine\n=======\ntheirs\n>>>>>>> after updating\n")
    (standard / "results.parquet").write_bytes(b"PAR1")
    git(standard, "add", "-f", "notes.md", "results.parquet", "data")
    commit = run(standard, "git", "commit", "-m", "oops", check=False)
    output = commit.stdout + commit.stderr
    assert commit.returncode != 0
    assert "results.parquet: a database/data file" in output
    assert re.search(r"data/\S+: data/ is versioned by DVC", output), output
    assert re.search(r"conflict-markers\n- exit code: 1", output) or "hook id: conflict-markers" in output
    git(standard, "reset", "--quiet")
    (standard / "notes.md").unlink()
    (standard / "results.parquet").unlink()
    assert git(standard, "status", "--porcelain") == ""


@pytest.mark.slow
def test_minimal_versioning_every_command_works_with_git_only(minimal: Path) -> None:
    db = minimal / "benchmark.db"
    assert not (minimal / ".dvc").exists() and not (minimal / "data.dvc").exists()
    hook = minimal / ".git" / "hooks" / "pre-commit"
    hook.unlink()
    assert "pre-commit hooks installed" in make(minimal, "install").stdout
    assert "pre_commit" in hook.read_text(), "make install installs the hooks"
    make(minimal, "experiment")
    first = tags(minimal)[-1]
    assert MESSAGE.match(git(minimal, "tag", "-l", first, "--format=%(contents:subject)"))
    assert git(minimal, "rev-parse", f"{first}^{{commit}}") == git(minimal, "rev-parse", "HEAD"), "no results commit"
    assert first in make(minimal, "experiments").stdout
    make(minimal, "preflight")
    make(minimal, "check-schema")
    assert "nothing to push" in make(minimal, "push").stdout
    assert "no DVC" in make(minimal, "dvc-setup").stdout

    # a rename with the sqlite engine, through the experiment's own flag
    rename_seed(minimal, "vmin")
    git(minimal, "commit", "--quiet", "--no-verify", "-am", "rename seed")
    make(minimal, "experiment", "ARGS=--rename seed=random_seed")
    assert "params_seed" not in columns(db, "predictions")
    assert query(db, "SELECT COUNT(*) - COUNT(params_random_seed) FROM predictions") == [(0,)]

    done = make(minimal, "reproduce", f"TAG={first}")
    assert "not versioned" in done.stdout
    assert git(minimal, "describe", "--tags", "--exact-match") == first
    git(minimal, "switch", "--quiet", "main")
