"""Per-version results files (issue 16): export one version's rows, rebuild the working database from the files.

In-process on the toy (tests/toy.py): two experiment versions recorded by `bench run`, error-history rows
as the runner moves them, then each version exported to results/<version>.db. A version file holds only
its own rows; the working database rebuilt from the files is the original, row for row, and rebuilt
from the first file alone it is the database as it was after the first version (what `make reproduce`
of that tag restores).
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import pytest
from toy import dump_database as dump

VERSIONS = ("e0.0.1", "e0.0.2")


def schema(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT type, name, sql FROM sqlite_master ORDER BY type, name").fetchall()
    con.close()
    return rows


def record(capsys: pytest.CaptureFixture, version: str, *flags: str) -> None:
    from bench_harness._cli.main import main

    assert main(["run", "--experiment-version", version, "--quiet", *flags]) == 0, capsys.readouterr()


def history_rows(db: Path, version: str) -> None:
    """Error rows moved aside before a recompute, as the runner's Store.move_rows leaves them."""
    from bench_harness._storage.store import Store

    with Store(db) as store:
        rowids = [r[0] for r in store.query("SELECT rowid FROM predictions WHERE experiment_version = ?", (version,))]
        store.move_rows("predictions", "predictions_error_history", rowids[:2], {"moved_because": "error"})
        moved = store.query_dicts("SELECT * FROM predictions_error_history WHERE experiment_version = ?", (version,))
        back = [{k: v for k, v in row.items() if k != "moved_because"} for row in moved]
        store.insert("predictions", back)  # the recomputed rows, appended


@pytest.fixture
def recorded(toy: Path, capsys: pytest.CaptureFixture, tmp_path: Path) -> tuple[Path, Path]:
    """The toy's working database with two versions (the second all cache hits plus history rows) and a
    copy of it as it was after the first version."""
    db = toy / "benchmark.db"
    record(capsys, VERSIONS[0])
    history_rows(db, VERSIONS[0])
    first = tmp_path / "after-first.db"
    first.write_bytes(db.read_bytes())
    record(capsys, VERSIONS[1])
    return db, first


def test_a_version_file_holds_only_its_own_rows(recorded: tuple[Path, Path], tmp_path: Path) -> None:
    from bench_harness._storage import versionfiles

    db, _ = recorded
    with sqlite3.connect(db) as con:
        tables = ("predictions", "metrics", "predictions_error_history")
        expected = {
            (t, v): con.execute(f"SELECT COUNT(*) FROM {t} WHERE experiment_version = ?", (v,)).fetchone()[0]
            for t in tables
            for v in VERSIONS
        }
    con.close()
    assert all(expected[("predictions", v)] > 0 and expected[("metrics", v)] > 0 for v in VERSIONS)
    assert expected[("predictions_error_history", VERSIONS[0])] == 2
    for version in VERSIONS:
        path = versionfiles.version_file(tmp_path / "results", version)
        counts = versionfiles.export_version(db, version, path)
        assert path.name == f"{version}.db" and not list(path.parent.glob(".*.tmp.db"))
        with sqlite3.connect(path) as con:
            for table in tables:
                versions = con.execute(f"SELECT experiment_version, COUNT(*) FROM {table} GROUP BY 1").fetchall()
                own = [(version, expected[(table, version)])] if expected[(table, version)] else []
                assert versions == own, (table, versions)
                assert counts[table] == expected[(table, version)]
        con.close()
    small = versionfiles.version_file(tmp_path / "results", VERSIONS[0]).stat().st_size
    assert small < db.stat().st_size, "a version file is smaller than the working database of both versions"


def test_the_working_database_is_rebuilt_from_the_files_row_for_row(
    recorded: tuple[Path, Path], tmp_path: Path
) -> None:
    from bench_harness._core.env import version_key
    from bench_harness._storage import versionfiles

    db, first = recorded
    folder = tmp_path / "results"
    files = [versionfiles.version_file(folder, v) for v in VERSIONS]
    for version, path in zip(VERSIONS, files, strict=True):
        versionfiles.export_version(db, version, path)
    whole, definitions = dump(db), schema(db)
    db.unlink()
    counts = versionfiles.rebuild(list(reversed(files)), db, order=version_key)
    assert dump(db) == whole, "every table, every row, in order"
    assert schema(db) == definitions, "the same table and index definitions"
    assert counts["predictions"] == len(whole["predictions"])

    reproduced = tmp_path / "reproduced.db"
    versionfiles.rebuild(files[:1], reproduced, order=version_key)
    assert dump(reproduced) == dump(first), "the first version's files give the database as it was then"


def test_a_renamed_column_is_kept_not_dropped(recorded: tuple[Path, Path], tmp_path: Path) -> None:
    from bench_harness._core.env import version_key
    from bench_harness._storage import versionfiles

    db, _ = recorded
    folder = tmp_path / "results"
    versionfiles.export_version(db, VERSIONS[0], versionfiles.version_file(folder, VERSIONS[0]))
    with sqlite3.connect(db) as con:
        con.execute("ALTER TABLE predictions RENAME COLUMN prediction TO answer")
    con.close()
    versionfiles.export_version(db, VERSIONS[1], versionfiles.version_file(folder, VERSIONS[1]))
    rebuilt = tmp_path / "rebuilt.db"
    versionfiles.rebuild(sorted(folder.glob("*.db")), rebuilt, order=version_key)
    with sqlite3.connect(rebuilt) as con:
        sql = "SELECT COUNT(prediction), COUNT(answer) FROM predictions WHERE experiment_version = ?"
        kept, renamed = con.execute(sql, (VERSIONS[0],)).fetchone()
        assert kept > 0 and renamed == 0, "the first version's values survive under their old name"
    con.close()


def test_a_column_renamed_in_place_is_renamed_in_the_older_files_rows_when_rebuilt(
    recorded: tuple[Path, Path], tmp_path: Path
) -> None:
    """`check-schema --rename` after version 1 was exported: rebuilt from both files, version 1's rows carry
    the new name, as in the working database (`make reproduce` of a later tag, a fresh clone's rebuild);
    rebuilt from version 1's file alone, the old name, as it was then. A second rename chains (a -> b -> c)."""
    from bench_harness._checks.schema import apply_renames
    from bench_harness._core.config import load_config
    from bench_harness._core.env import version_key
    from bench_harness._storage import versionfiles

    db, first = recorded
    folder = tmp_path / "results"
    files = [versionfiles.version_file(folder, v) for v in (*VERSIONS, "e0.0.3")]
    versionfiles.export_version(db, VERSIONS[0], files[0])
    assert apply_renames(load_config(), [("params_offset", "params_shift")])
    versionfiles.export_version(db, VERSIONS[1], files[1])
    assert apply_renames(load_config(), [("params_shift", "params_delta")])
    versionfiles.export_version(db, "e0.0.3", files[2])  # no rows of its own: the renames it knows
    rebuilt = tmp_path / "rebuilt.db"
    versionfiles.rebuild(files, rebuilt, order=version_key)
    assert dump(rebuilt) == dump(db), "every row under the working database's names, the record of renames too"
    with sqlite3.connect(rebuilt) as con:
        assert con.execute("SELECT COUNT(params_delta) FROM predictions").fetchone()[0] > 0
    con.close()
    versionfiles.rebuild(files[:1], rebuilt, order=version_key)
    assert dump(rebuilt) == dump(first), "version 1 alone: the database as it was, before any rename"


def test_a_rename_that_merges_two_columns_merges_them_in_the_rebuild(toy: Path, tmp_path: Path) -> None:
    """An older file that has both the old and the new column (a run wrote the new name before the rename):
    the rebuild keeps the new column's value and fills its gaps from the old one, as the rename did."""
    from bench_harness._storage import versionfiles

    db = tmp_path / "benchmark.db"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE predictions (experiment_version TEXT, params_a INTEGER, params_b INTEGER)")
        con.executemany("INSERT INTO predictions VALUES ('e0.0.1', ?, ?)", [(1, None), (2, 20), (None, None)])
    con.close()
    folder = tmp_path / "results"
    versionfiles.export_version(db, "e0.0.1", versionfiles.version_file(folder, "e0.0.1"))
    with sqlite3.connect(db) as con:
        con.execute("UPDATE predictions SET params_b = params_a WHERE params_b IS NULL")
        con.execute("ALTER TABLE predictions DROP COLUMN params_a")
    con.close()
    versionfiles.record_rename(db, "predictions", "params_a", "params_b")
    versionfiles.export_version(db, "e0.0.2", versionfiles.version_file(folder, "e0.0.2"))
    rebuilt = tmp_path / "rebuilt.db"
    versionfiles.rebuild(sorted(folder.glob("*.db")), rebuilt)
    assert dump(rebuilt) == dump(db)
    assert dump(rebuilt)["predictions"] == [("e0.0.1", 1), ("e0.0.1", 20), ("e0.0.1", None)]


def test_the_first_experiment_after_the_whole_database_layout_adopts_it(
    toy: Path, capsys: pytest.CaptureFixture
) -> None:
    """A benchmark whose tags have benchmark.db.dvc (before issue 16), when `make update`'s migration did not
    run: the first results commit exports the old tagged version once, retires benchmark.db.dvc, and
    the working database rebuilt from the latest tag's files is the original, row for row."""
    from bench_harness._core.config import load_config
    from bench_harness._versioning import versioning

    toml = toy / "benchmark.toml"
    toml.write_text(toml.read_text().replace('level = "minimal"', 'level = "standard"'))
    (toy / ".gitignore").write_text("*.db\n__pycache__/\n")
    cfg = load_config()

    def git(*args: str) -> str:
        return versioning.git(toy, "-c", "user.email=t@t", "-c", "user.name=t", *args).stdout.strip()

    git("init", "-q")
    versioning.dvc(toy, "init", "--quiet")
    record(capsys, VERSIONS[0])
    versioning.dvc(toy, "add", "--quiet", "benchmark.db")  # the old layout's results commit and tag
    git("add", "-A")
    git("commit", "-qm", "e0.0.1 results")
    git("tag", "-a", VERSIONS[0], "-m", "first")
    record(capsys, VERSIONS[1])

    lines = versioning.commit_results(cfg, VERSIONS[1])
    assert "results of earlier experiments now in results/ too: e0.0.1" in lines[-1], lines
    assert git("ls-files", "results", "benchmark.db.dvc").split() == ["results/e0.0.1.db.dvc", "results/e0.0.2.db.dvc"]
    assert git("status", "--porcelain") == ""
    assert versioning.commit_results(cfg, VERSIONS[1])[0].endswith("already committed"), "idempotent"
    git("tag", "-a", VERSIONS[1], "-m", "second")
    for version in VERSIONS:
        with sqlite3.connect(toy / "results" / f"{version}.db") as con:
            assert con.execute("SELECT DISTINCT experiment_version FROM predictions").fetchall() == [(version,)]
        con.close()

    whole = dump(cfg.db_path)
    cfg.db_path.unlink()
    (toy / "results" / "e0.0.1.db").unlink()  # gone from results/: DVC's cache has it
    assert "rebuilt from the 2 version files of e0.0.2" in versioning.rebuild_database(cfg)[0]
    assert dump(cfg.db_path) == whole
    assert versioning.database_mismatch(cfg) == []


# -- the versioned workflow on the toy: git + DVC for real, `bench` in-process -------------------------------
RESCORING = '''
"""Toy scoring, changed after the experiments: a parser that reads the raw response the other way round."""

from __future__ import annotations

from typing import Any


def parse_prediction(row: dict[str, Any]) -> Any:
    return 1 - int(str(row.get("raw_response")).split("=")[1])
'''


def versioned_toy(toy: Path, monkeypatch: pytest.MonkeyPatch, level: str = "standard") -> None:
    """The toy as a git repository with DVC (standard versioning), committed: ready for `bench experiment`."""
    from bench_harness._versioning import versioning

    for key in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{key}_NAME", "t")
        monkeypatch.setenv(f"GIT_{key}_EMAIL", "t@t")
    toml = toy / "benchmark.toml"
    toml.write_text(toml.read_text().replace('level = "minimal"', f'level = "{level}"'))
    (toy / ".gitignore").write_text("*.db\n__pycache__/\n")
    versioning.git(toy, "init", "-q")
    if level != "minimal":
        versioning.dvc(toy, "init", "--quiet")
    commit(toy, "init")


def commit(toy: Path, message: str, *paths: str) -> None:
    from bench_harness._versioning import versioning

    versioning.git(toy, "add", *(paths or ("-A",)))
    versioning.git(toy, "commit", "-qm", message)


def bench(capsys: pytest.CaptureFixture, *args: str, code: int = 0) -> tuple[str, str]:
    """`bench <args>` in-process: (stdout, stderr); the exit code must be `code`."""
    from bench_harness._cli.main import main

    done = main(list(args))
    out, err = capsys.readouterr()
    assert done == code, (args, out, err)
    return out, err


def git_out(toy: Path, *args: str) -> str:
    from bench_harness._versioning import versioning

    return versioning.git(toy, *args).stdout.strip()


def cache_objects(toy: Path) -> set[str]:
    return {str(p.relative_to(toy)) for p in (toy / ".dvc" / "cache").rglob("*") if p.is_file()}


def rows(db: Path) -> dict[str, list[tuple]]:
    """Every table's rows as sorted multisets (a rebuild orders a later rescore's rows with their version)."""
    return {table: sorted(found, key=repr) for table, found in dump(db).items()}


def rescore_latest_scoring(toy: Path) -> None:
    """The user changes scoring.py and commits it (a rescore is what follows)."""
    import importlib
    import sys

    (toy / "src" / "toy_bench" / "scoring.py").write_text(RESCORING.lstrip())
    sys.modules.pop("toy_bench.scoring", None)
    importlib.invalidate_caches()
    commit(toy, "read the raw response")


def test_a_rescore_reaches_the_version_file_and_a_rebuild_keeps_it(
    toy: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """Gap 1: `make rescore` of a tagged version exports its file again and `dvc add`s it; the experiment is
    refused until the pointer is committed (the message names the command); the old tag keeps its file; a
    rebuild after the commit has the rescore; DVC stores one more copy of that version's rows only."""
    versioned_toy(toy, monkeypatch)
    bench(capsys, "experiment", "--quiet", "--no-push")
    bench(capsys, "experiment", "--quiet", "--no-push", "--force-tag")
    pointer = "results/e0.0.1.db.dvc"
    tagged = git_out(toy, "show", f"e0.0.1:{pointer}")
    objects = cache_objects(toy)
    rescore_latest_scoring(toy)

    out, _ = bench(capsys, "rescore", "--version", "e0.0.1")
    fix = f"git add {pointer} && git commit -m 'e0.0.1 rescored'"
    assert f"commit it: {fix}" in out, out
    assert len(cache_objects(toy) - objects) == 1, "one more copy of that version's rows, nothing else"
    with sqlite3.connect(toy / "results" / "e0.0.1.db") as con:
        scored = con.execute("SELECT COUNT(scored_prediction) FROM predictions").fetchone()[0]
        rescored_metrics = con.execute("SELECT COUNT(*) FROM metrics WHERE scorer_version IS NOT NULL").fetchone()[0]
    con.close()
    assert scored == 24 and rescored_metrics == 2, "the version file has the rescore"

    _, err = bench(capsys, "experiment", "--quiet", "--no-push", "--force-tag", code=2)
    assert "uncommitted changes" in err and fix in err, err
    assert git_out(toy, "show", f"e0.0.1:{pointer}") == tagged, "the old tag keeps the file as it was tagged"

    commit(toy, "e0.0.1 rescored", pointer)
    working = rows(toy / "benchmark.db")
    (toy / "benchmark.db").unlink()
    (toy / "results" / "e0.0.1.db").unlink()  # a fresh clone: the DVC cache has the files
    out, _ = bench(capsys, "rebuild-db")
    assert rows(toy / "benchmark.db") == working, "the rebuild after the commit has the rescore, row for row"

    out, _ = bench(capsys, "experiment", "--quiet", "--no-push", "--force-tag")
    assert git_out(toy, "show", f"e0.0.3:{pointer}") == git_out(toy, "show", f"HEAD:{pointer}") != tagged
    assert git_out(toy, "status", "--porcelain") == ""

    (toy / "benchmark.db").unlink()  # a fresh clone's first command reads an old version: rebuilt first
    out, err = bench(capsys, "report", "--version", "e0.0.1", "--out", "reports")
    assert "benchmark.db rebuilt from the 3 version files of e0.0.3" in err and "RESULTS.md" in out, (out, err)


def test_a_rescore_under_minimal_versioning_writes_no_results_file(
    toy: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    versioned_toy(toy, monkeypatch, level="minimal")
    bench(capsys, "experiment", "--quiet", "--no-push")
    rescore_latest_scoring(toy)
    out, _ = bench(capsys, "rescore")
    assert "e0.0.1: 24 rows re-scored" in out and "commit it" not in out
    assert not (toy / "results").exists()
    assert git_out(toy, "status", "--porcelain") == ""


@pytest.mark.parametrize("phase", ["after:export", "after:dvc-add"])
def test_an_abandoned_experiment_leaves_no_results_file(
    toy: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, phase: str
) -> None:
    """Gap 2, in the kill matrix's spirit: an experiment SIGKILLed after its export (or its `dvc add`), then
    HEAD moves (a commit): the next `make experiment` is a new one, its tree clean, no stray results file;
    the abandoned version's rows stay in the working database, untagged."""
    import os
    import subprocess
    import sys

    from toy import HARNESS_SRC

    versioned_toy(toy, monkeypatch)
    bench(capsys, "experiment", "--quiet", "--no-push")
    command = [sys.executable, "-m", "bench_harness", "experiment", "--quiet", "--no-push", "--force-tag"]
    environment = {**os.environ, "PYTHONPATH": f"{HARNESS_SRC}{os.pathsep}{toy / 'src'}", "BENCH_FAULT": phase}
    killed = subprocess.run(command, cwd=toy, env=environment, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert killed.returncode == -9, (killed.stdout, killed.stderr)
    assert (toy / "results" / "e0.0.2.db").exists()
    (toy / "notes.md").write_text("moving on\n")
    commit(toy, "notes", "notes.md")  # (`git add -A` would commit the stray pointer: it is then kept, tracked)

    out, _ = bench(capsys, "experiment", "--quiet", "--no-push", "--force-tag")
    assert "e0.0.2 was interrupted" in out and "tagged e0.0.3" in out, out
    assert git_out(toy, "status", "--porcelain", "--untracked-files=all") == ""
    assert sorted(p.name for p in (toy / "results").iterdir()) == [
        "e0.0.1.db",
        "e0.0.1.db.dvc",
        "e0.0.3.db",
        "e0.0.3.db.dvc",
    ]
    assert git_out(toy, "tag", "-l", "e*").split() == ["e0.0.1", "e0.0.3"]
    with sqlite3.connect(toy / "benchmark.db") as con:
        kept = con.execute("SELECT COUNT(*) FROM metrics WHERE experiment_version = 'e0.0.2'").fetchone()[0]
    con.close()
    assert kept == 2, "the abandoned version's rows stay in the working database"


def test_a_fresh_clone_rebuilds_with_one_fetch_not_a_get_per_version(
    toy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """Another machine: `git clone`, no `dvc pull`. rebuild-db downloads every version file in one
    `dvc fetch` (a `dvc get` per version costs about a second each) and gives the same database."""
    from bench_harness._versioning import versioning

    versioned_toy(toy, monkeypatch)
    versioning.dvc(toy, "remote", "add", "--default", "storage", str(tmp_path / "remote"))
    commit(toy, "remote")
    for _ in VERSIONS + ("e0.0.3",):
        bench(capsys, "experiment", "--quiet", "--force-tag")  # pushes to the remote
    working = dump(toy / "benchmark.db")
    clone = tmp_path / "clone"
    versioning.git(tmp_path, "clone", "--quiet", str(toy), str(clone))
    assert not (clone / ".dvc" / "cache").exists() and not (clone / "benchmark.db").exists()
    monkeypatch.setenv("BENCH_ROOT", str(clone))

    calls: list[tuple[str, ...]] = []
    real_dvc = versioning.dvc
    monkeypatch.setattr(versioning, "dvc", lambda root, *args, **kw: calls.append(args) or real_dvc(root, *args, **kw))
    out, _ = bench(capsys, "rebuild-db")
    assert [args[0] for args in calls] == ["fetch"], calls
    assert "from the 3 version files of e0.0.3 (DVC remote, one `dvc fetch`)" in out, out
    assert dump(clone / "benchmark.db") == working, "the clone's database is the original's, row for row"


def test_a_zombie_dvc_add_left_in_dvcs_lock_does_not_block_the_resumed_experiment(
    toy: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """kill:dvc-add on a machine whose PID 1 reaps late: the SIGKILLed `dvc add` is a zombie, still listed
    in .dvc/tmp/rwlock, and DVC counts a zombie as running ("is busy ... remove rwlock by hand"). The
    next `make experiment` must complete without that manual step; a live process's entry is kept."""
    import json
    import subprocess

    versioned_toy(toy, monkeypatch)
    zombie = subprocess.Popen(["true"])  # never waited for: a zombie until the test ends
    time.sleep(0.3)
    target = str(toy / "results" / "e0.0.1.db")
    (toy / ".dvc" / "tmp").mkdir(parents=True, exist_ok=True)
    lock = {
        "write": {target: {"pid": zombie.pid, "cmd": "dvc add results/e0.0.1.db"}},
        "read": {str(toy / "data"): [{"pid": os.getpid(), "cmd": "dvc status (a user's, still running)"}]},
    }
    (toy / ".dvc" / "tmp" / "rwlock").write_text(json.dumps(lock))
    try:
        bench(capsys, "experiment", "--quiet", "--no-push")
        left = json.loads((toy / ".dvc" / "tmp" / "rwlock").read_text())
        assert [info["pid"] for infos in left["read"].values() for info in infos] == [os.getpid()]
        assert git_out(toy, "tag", "-l") == "e0.0.1"
    finally:
        zombie.wait()
