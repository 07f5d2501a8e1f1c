"""Reproducibility in generated projects: tags per experiment, DVC, reproduce, schema drift, dirty trees.

Every command runs with stdin closed (conftest.run), so any prompt would fail the test instead of
hanging. Each test leaves its project on `main` with a clean tree, and expects only that: the
tests of one project can run in any order.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml
from conftest import copy_project as shared_copy
from conftest import make, project_env, run, tool
from test_kinds import ANSWERS as KIND_ANSWERS
from test_render_matrix import ANSWER_SETS
from toy import dump_database as dump

STANDARD = ("versioning-standard", {})  # the default answers (shared render): duckdb, local DVC remote
# Minimal versioning (git only): test_render_matrix's sqlite-processes-minimal-csv answers, one render for both.
MINIMAL_ANSWERS = ANSWER_SETS["sqlite-processes-minimal-csv"]
MINIMAL = ("versioning-minimal", MINIMAL_ANSWERS)
# The kill matrix's project: maximum versioning (every seam, the branch switch included) of the throughput
# kind, whose predict imports the standard library only. The seams are the harness's, the same for
# every kind; scikit-learn's import (about 1 s) in each of the matrix's 24 experiments tested nothing.
# test_kinds' throughput answers: one render for both.
MAXIMUM = ("versioning-maximum", KIND_ANSWERS["throughput"])
MESSAGE = re.compile(r"^model=\w+ \| acc=\d\.\d{4} \| data=[0-9a-f]{7} \| 3 configs$")


@pytest.fixture(scope="module")
def standard(rendered) -> Path:
    return rendered(*STANDARD)


@pytest.fixture(scope="module")
def minimal(rendered) -> Path:
    return rendered(*MINIMAL)


@pytest.fixture(scope="module")
def maximum(rendered) -> Path:
    return rendered(*MAXIMUM)


def copy_project(project: Path, destination: Path) -> Path:
    """A private copy of a rendered project with its DVC remote (a sibling folder), the .venv hard-linked.

    conftest.copy_project repoints the copy's scripts at it (a `cp -a` of the whole project cost a
    687 MB copy per test, and its `bench`/`dvc` still ran from the original's .venv).
    """
    return shared_copy(project, destination)


def git(project: Path, *args: str, check: bool = True) -> str:
    return run(project, "git", *args, check=check).stdout.strip()


def tags(project: Path) -> list[str]:
    return git(project, "tag", "-l", "e*", "--sort=version:refname").split()


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
    run(project, tool(project, "dvc"), "pull", "--quiet", "--force")


@pytest.mark.slow
def test_two_experiments_are_tagged_and_the_first_is_reproduced_row_for_row(standard: Path, tmp_path: Path) -> None:
    db = standard / "benchmark.db"
    before = tags(standard)
    # The module's project is shared: a test that ran first on this worker may have left nothing to change.
    first = make(standard, "experiment", *(["ARGS=--force-tag"] if before else []))
    snapshot = tmp_path / "first.db"
    shutil.copy(db, snapshot)
    make(standard, "experiment", "ARGS=--force-tag")  # nothing changed: recorded only when asked
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
    # issue 16: each version's own rows in results/<version>.db (its own .dvc); benchmark.db is not versioned whole
    for tag in new:
        assert run(standard, "git", "cat-file", "-e", f"{tag}:results/{tag}.db.dvc", check=False).returncode == 0
        assert run(standard, "git", "cat-file", "-e", f"{tag}:benchmark.db.dvc", check=False).returncode != 0
        for table in ("predictions", "metrics"):
            in_file = query(standard / "results" / f"{tag}.db", f"SELECT experiment_version, COUNT(*) FROM {table}")
            assert in_file == query(db, f"SELECT '{tag}', COUNT(*) FROM {table} WHERE experiment_version = '{tag}'")
    assert git(standard, "status", "--porcelain") == "", "the results commit leaves a clean tree"

    make(standard, "push")
    latest = dump(db)
    shutil.rmtree(standard / ".dvc" / "cache")  # only the remote holds the results now
    done = make(standard, "reproduce", f"TAG=e0.0.{n + 1}")
    assert "pulled" in done.stdout
    worktree = standard / "reproductions" / f"e0.0.{n + 1}"
    assert git(worktree, "describe", "--tags", "--exact-match") == f"e0.0.{n + 1}"
    assert dump(worktree / "benchmark.db") == dump(snapshot), "the first experiment's database, row for row"
    # issue 13 point 3: the working tree never left main nor its database
    assert git(standard, "branch", "--show-current") == "main"
    assert dump(db) == latest
    assert git(standard, "status", "--porcelain") == ""
    git(standard, "worktree", "remove", "--force", str(worktree))
    run(standard, tool(standard, "dvc"), "pull", "--quiet")  # the cache again holds every version's file


@pytest.mark.slow
def test_a_renamed_param_is_caught_by_the_hook_and_the_experiment_then_renamed_in_place(standard: Path) -> None:
    db = standard / "benchmark.db"
    if not tags(standard):
        make(standard, "experiment")
    rename_seed(standard, "my_benchmark")
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
    # Rebuilt from results/ (a fresh clone, `make reproduce` of a later tag): the rows of the versions
    # exported before the rename carry the new name too, row for row.
    renamed = dump(db)
    run(standard, "uv", "run", "bench", "rebuild-db")
    assert dump(db) == renamed


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
    run(standard, tool(standard, "dvc"), "checkout", "--quiet", "--force", "data.dvc")
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
    rename_seed(minimal, MINIMAL_ANSWERS["package_name"])
    git(minimal, "commit", "--quiet", "--no-verify", "-am", "rename seed")
    make(minimal, "experiment", "ARGS=--rename seed=random_seed")
    predictions = MINIMAL_ANSWERS["predictions_table"]
    assert "params_seed" not in columns(db, predictions)
    assert query(db, f"SELECT COUNT(*) - COUNT(params_random_seed) FROM {predictions}") == [(0,)]

    done = make(minimal, "reproduce", f"TAG={first}")
    assert "not versioned" in done.stdout
    worktree = minimal / "reproductions" / first  # reproduce restores into a worktree; the project stays on main
    assert git(worktree, "describe", "--tags", "--exact-match") == first
    assert git(minimal, "branch", "--show-current") == "main"
    git(minimal, "worktree", "remove", "--force", str(worktree))


# -- issue 14: the experiment workflow is safe at every seam ------------------------------------------
# Named phases of `bench experiment` where the crash tests SIGKILL it (BENCH_FAULT): after:<step> kills the
# process once the step is done; during:<step> kills it while its DVC child runs (the child goes on, an
# orphan); kill:<step> kills the DVC child too (which may leave a `.tmp` in the cache).
KILL_PHASES = (
    "after:branch",
    "after:run",
    "after:metrics",
    "after:export",
    "during:dvc-add",
    "kill:dvc-add",
    "after:dvc-add",
    "after:commit",
    "after:tag",
    "during:push",
    "after:push",
    "after:switch-back",
)


def cache_tmp_files(project: Path) -> list[Path]:
    return list((project / ".dvc" / "cache").rglob("*.tmp"))


def md5_of(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def remote_objects(project: Path, tag: str) -> dict[str, Path]:
    """{.dvc file: its output's object in the DVC remote} for every output `tag` tracks, each checked to be
    in the remote with the content its md5 names (a directory: its listing and every file listed).

    What `dvc status --cloud` asks of a tag, read straight from the local remote's folder (a `dvc`
    process costs half a second, and the matrix asks twelve times).
    """
    url = re.search(r"^\s*url\s*=\s*(.+)$", (project / ".dvc" / "config").read_text(), re.MULTILINE)
    assert url, "a DVC remote is configured"
    remote = (project / ".dvc" / url.group(1).strip()).resolve() / "files" / "md5"
    tracked = [name for name in git(project, "ls-tree", "-r", "--name-only", tag).split() if name.endswith(".dvc")]
    objects = {}
    for name in tracked:
        (out,) = yaml.safe_load(git(project, "show", f"{tag}:{name}"))["outs"]
        digest = out["md5"]
        stored = remote / digest[:2] / digest[2:]
        assert stored.is_file() and md5_of(stored) == digest.removesuffix(".dir"), f"{tag}: {name} not in the remote"
        if digest.endswith(".dir"):
            for entry in json.loads(stored.read_text()):
                inner = remote / entry["md5"][:2] / entry["md5"][2:]
                assert inner.is_file() and md5_of(inner) == entry["md5"], f"{tag}: {name}/{entry['relpath']}"
        objects[name] = stored
    return objects


@pytest.mark.slow
@pytest.mark.parametrize("phase", KILL_PHASES)
def test_kill_matrix_a_rerun_completes_the_killed_experiment_without_repairs(
    maximum: Path, tmp_path: Path, phase: str
) -> None:
    """The kill matrix (maximum versioning: every seam, the branch switch included): one kill per phase,
    then a plain `make experiment` must complete the same experiment: no --allow-dirty, no manual step."""
    project = copy_project(maximum, tmp_path / "project")
    db = project / "benchmark.db"
    killed = make(project, "experiment", check=False, BENCH_FAULT=phase)
    assert killed.returncode != 0, f"{phase}: the fault hook did not fire"
    # a SIGKILL at the named seam (uv exits 128 + 9), not an exception on the way there
    assert "Error 137" in killed.stderr and "Traceback" not in killed.stderr, killed.stderr
    if phase == "kill:dvc-add":  # what a killed `dvc add` of a large database leaves behind
        stale = project / ".dvc" / "cache" / "files" / "md5" / "00" / "killed.0123.tmp"
        stale.parent.mkdir(parents=True, exist_ok=True)
        stale.write_bytes(b"x" * 1000)
        os.utime(stale, (time.time() - 60, time.time() - 60))
    resumed = make(project, "experiment", check=False)
    assert resumed.returncode == 0, f"{phase}: manual repair needed\n{resumed.stdout}\n{resumed.stderr}"
    assert "allow-dirty" not in resumed.stderr
    assert tags(project) == ["e0.0.1"], "the killed experiment is completed, not a new one"
    assert git(project, "branch", "--show-current") == "main", "HEAD back where the user was"
    assert git(project, "status", "--porcelain") == ""
    assert git(project, "rev-parse", "e0.0.1^{commit}") == git(project, "rev-parse", "experiment/e0.0.1")
    assert not (project / ".git" / "bench-experiment.json").exists(), "the journal is closed"
    assert cache_tmp_files(project) == []
    assert query(db, "SELECT DISTINCT git_dirty FROM predictions") == [(0,)], "no row marked dirty"
    configurations = query(db, "SELECT COUNT(DISTINCT config_id) FROM predictions")[0][0]
    assert configurations > 1 and query(db, "SELECT COUNT(*), COUNT(DISTINCT config_id) FROM metrics") == [
        (configurations, configurations)
    ]
    assert query(db, "SELECT COUNT(*) = COUNT(DISTINCT config_id || input_id) FROM predictions") == [(1,)]
    # every output of the tag reached the remote, and the tagged results there are the working database's rows
    objects = remote_objects(project, "e0.0.1")
    assert set(objects) == {"data.dvc", "results/e0.0.1.db.dvc"}
    tagged = dump(objects["results/e0.0.1.db.dvc"])
    assert tagged.pop("bench_version_file") and tagged == dump(db)


@pytest.mark.slow
def test_one_experiment_at_a_time_and_the_version_is_claimed_once(standard: Path, tmp_path: Path) -> None:
    project = copy_project(standard, tmp_path / "project")
    lock_path = project / ".git" / "bench-experiment.lock"
    with lock_path.open("a+") as held:  # a running experiment, as its lock file names it
        fcntl.flock(held, fcntl.LOCK_EX)
        held.truncate(0)
        held.write(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "host": os.uname().nodename,
                    "command": "bench experiment",
                    "started": "2026-01-01T00:00:00",
                }
            )
        )
        held.flush()
        refused = make(project, "experiment", check=False)
    assert refused.returncode == 2
    assert f"another experiment is running in this project: PID {os.getpid()}" in refused.stderr
    assert "bench experiment" in refused.stderr and "2026-01-01T00:00:00" in refused.stderr

    before = tags(project)
    command = ["make", "--no-print-directory", "experiment", "ARGS=--force-tag"]
    both = [
        subprocess.Popen(
            command,
            cwd=project,
            env=project_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=600) for p in both]
    codes = sorted(p.returncode for p in both)
    assert codes[0] == 0, outputs
    new = tags(project)[len(before) :]
    assert len(new) == len(set(new)) == codes.count(0), (new, codes, outputs)
    db = project / "benchmark.db"
    for version in new:  # never two experiments' rows under one version
        assert query(db, f"SELECT COUNT(*) FROM metrics WHERE experiment_version = '{version}'") == [(3,)]
        counts = query(
            db,
            f"SELECT COUNT(*), COUNT(DISTINCT config_id || input_id) FROM predictions "
            f"WHERE experiment_version = '{version}'",
        )
        assert counts[0][0] == counts[0][1]
    if codes[1] != 0:
        assert "another experiment is running" in "".join(out[1] for out in outputs)


@pytest.mark.slow
def test_a_database_of_another_checkout_is_refused_with_the_command_that_fixes_it(
    standard: Path, tmp_path: Path
) -> None:
    """Issue 13 point 3: after reproduce (or a manual checkout of a tag), never append to an old database."""
    project = copy_project(standard, tmp_path / "project")
    db = project / "benchmark.db"
    make(project, "experiment", "ARGS=--force-tag")
    first = tags(project)[-1]
    shutil.copy(db, tmp_path / "first.db")
    make(project, "experiment", "ARGS=--force-tag")
    latest = tags(project)[-1]
    assert first in {r[0] for r in query(db, "SELECT experiment_version FROM metrics")}
    assert latest in {r[0] for r in query(db, "SELECT experiment_version FROM metrics")}
    # a stale database: the first experiment's (what `git checkout <tag> && dvc checkout` then
    # `git switch main` left before)
    shutil.copy(tmp_path / "first.db", db)
    refused = make(project, "experiment", check=False)
    assert refused.returncode == 2
    fix = "uv run bench rebuild-db"  # issue 16: the working database comes back from results/<version>.db
    assert fix in refused.stderr
    run(project, *fix.split())
    assert (project / "benchmark.before-rebuild.db").exists(), "the stale database is kept aside, not deleted"
    versions = {r[0] for r in query(db, "SELECT experiment_version FROM metrics")}
    assert set(tags(project)) <= versions, "every version back in the working database"
    make(project, "preflight")  # the checks `make experiment` starts with (the database's included) pass
    # a fresh clone (no working database): `make experiment` rebuilds it from the files, nothing recomputed
    (project / "benchmark.before-rebuild.db").unlink()
    db.unlink()
    again = make(project, "experiment", "ARGS=--force-tag").stdout
    assert "benchmark.db rebuilt from" in again and re.search(r": (\d+) tasks, 0 computed, \1 cache hits", again)
    assert set(tags(project)) <= {r[0] for r in query(db, "SELECT experiment_version FROM metrics")}


@pytest.mark.slow
def test_point_9_outputs_ignored_recopy_keeps_data_line_update_hint_and_hooks(standard: Path, tmp_path: Path) -> None:
    from copier import run_recopy

    project = copy_project(standard, tmp_path / "project")
    for name in ("reports/e0.0.1/RESULTS.md", "exports/predictions.csv"):
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text("x")
    assert git(project, "status", "--porcelain") == "", "reports/ and exports/ never make the tree dirty"
    assert (project / ".gitignore").read_text().splitlines().count("/data") == 1
    run_recopy(str(project), defaults=True, unsafe=True, skip_tasks=True, overwrite=True, quiet=True)
    assert "/data" in (project / ".gitignore").read_text().splitlines(), "recopy keeps DVC's /data line"
    git(project, "checkout", "--", ".")

    failed = make(project, "update", "COPIER=false", check=False)
    assert failed.returncode != 0 and "_src_path in .copier-answers.yml" in failed.stderr
    hook = project / ".git" / "hooks" / "pre-commit"
    hook.unlink()
    make(project, "update", "COPIER=true")
    assert hook.exists(), "an update installs the (maybe new) pre-commit hooks"


def test_commit_waits_for_a_reader_and_says_so(toy: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """Issue 14 row 7: a reader's open transaction (make duckdb) delays a batch; it never loses it."""
    from bench_harness._storage.store import DatabaseBusyError, Store

    db = toy / "busy.db"
    with Store(db) as store:
        store.insert("t", [{"a": 1}])
    reader = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    reader.execute("BEGIN")
    reader.execute("SELECT * FROM t").fetchall()  # holds a SHARED lock, as DuckDB's sqlite scan does
    threading.Timer(2.0, lambda: reader.execute("COMMIT")).start()
    monkeypatch.setenv("BENCH_BUSY_TIMEOUT", "30")
    with Store(db) as store:
        store.insert("t", [{"a": i} for i in range(2, 102)])
    assert "waiting for another process reading the results database" in capsys.readouterr().err
    assert query(db, "SELECT COUNT(*) FROM t") == [(101,)]

    reader.execute("BEGIN")
    reader.execute("SELECT * FROM t").fetchall()
    monkeypatch.setenv("BENCH_BUSY_TIMEOUT", "0.5")
    with Store(db) as store, pytest.raises(DatabaseBusyError, match="make duckdb"):
        store.insert("t", [{"a": 0}])
    reader.execute("COMMIT")
    reader.close()


def test_rescore_rows_carry_code_commit_and_preflight_never_compares_with_none(toy: Path) -> None:
    from bench_harness._core.config import load_config
    from bench_harness._results import rescore
    from bench_harness._storage.store import Store
    from bench_harness._versioning import versioning

    for command in (["init", "-q"], ["add", "-A"], ["-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "x"]):
        subprocess.run(["git", *command], cwd=toy, check=True, capture_output=True)
    cfg = load_config()
    commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=toy, capture_output=True, text=True)
    with Store(cfg.db_path) as store:  # an experiment's rows, as the runner records them
        rows = [
            {
                "track_id": "t",
                "timestamp": 1.0,
                "input_id": str(i),
                "config_id": "c1",
                "experiment_version": "e0.0.1",
                "phase": "experiment",
                "params_model_name": "parity",
                "prediction": i % 2,
                "raw_response": str(i % 2),
                "ground_truth": i % 2,
                "error": None,
                "latency": 0.01,
                "cache_key": f"k{i}",
            }
            for i in range(6)
        ]
        store.insert("predictions", rows)
        store.insert(
            "metrics",
            [
                {
                    "experiment_version": "e0.0.1",
                    "config_id": "c1",
                    "accuracy": 1.0,
                    "code_commit": commit.stdout.strip(),
                }
            ],
        )
    rescore.rescore(cfg, cfg.db_path, "e0.0.1", parse=lambda row: row.get("prediction"))
    rows = query(cfg.db_path, "SELECT code_commit FROM metrics WHERE scorer_version IS NOT NULL")
    assert rows and all(code not in (None, "") for (code,) in rows)
    with sqlite3.connect(cfg.db_path) as con:  # a hand-logged row without a commit, last
        con.execute("INSERT INTO metrics (experiment_version) VALUES ('e0.0.1')")
    con.close()
    assert not any("None" in line for line in versioning.code_changes(cfg))
    assert versioning.code_changes(cfg)[0].startswith("code: unchanged since e0.0.1")
