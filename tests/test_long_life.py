"""Issue 13's end-to-end scenario: a benchmark's long life, from the previous release to today's.

One slow test, the bar a user would set: render at commit 52a9c04 (the previous release, tagged
v0.2.0 in a temporary clone; the working tree is v0.3.0, as in test_migrate_52a9c04.py) ->
experiment -> `make update` -> experiment (0 computed) -> `make reproduce` and come back ->
experiment (every version in the working database), then the manual way back (`git checkout
<tag> && dvc checkout`, `git switch main`): refused with the exact fix, the fix, every version.

Decision on "nothing changed" after an update: the update changed template-owned files (the
harness), so the code that ran changed, and the experiment IS recorded (a new tag, every row a
cache hit: the user's code, configurations and inputs did not change, so no result is recomputed).
A later experiment with nothing changed at all records nothing.

Every step's command, exit code, wall time and output go into a transcript, printed when the test
fails (and written to $BENCH_SCENARIO_LOG when set, for the closing note).
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import test_migrate_52a9c04 as migration_test
from conftest import copy_project, run, tool
from test_update import git
from toy import dump_database as dump

# The render of the previous release, its first experiment, its update and the next experiment: shared
# with test_migrate_52a9c04.py.
PACKAGE = migration_test.PACKAGE
releases, old_release, migrated = migration_test.releases, migration_test.old_release, migration_test.migrated


@dataclass
class Transcript:
    """What each step ran, how long it took and what it said."""

    steps: list[str] = field(default_factory=list)

    def run(self, project: Path, title: str, *command: str, check: bool = True, **env: str):
        started = time.monotonic()
        done = run(project, *command, check=False, **env)
        seconds = time.monotonic() - started
        self.steps.append(
            f"## {title}\n$ {' '.join(command)}   # exit {done.returncode}, {seconds:.1f} s\n"
            f"{done.stdout.rstrip()}\n{done.stderr.rstrip()}".rstrip()
        )
        if check and done.returncode != 0:
            pytest.fail(f"{title}: `{' '.join(command)}` exited {done.returncode}")
        return done

    def make(self, project: Path, title: str, *targets: str, check: bool = True, **env: str):
        return self.run(project, title, "make", "--no-print-directory", *targets, check=check, **env)

    def note(self, title: str, text: str) -> None:
        self.steps.append(f"## {title}\n{text}")

    def text(self) -> str:
        return "\n\n".join(self.steps) + "\n"


def versions_in(db: Path) -> set[str]:
    with sqlite3.connect(db) as con:
        found = {r[0] for r in con.execute("SELECT DISTINCT experiment_version FROM metrics")}
    con.close()
    return found


def tags(project: Path) -> list[str]:
    return git(project, "tag", "-l", "e*", "--sort=version:refname").split()


def computed(output: str, version: str) -> tuple[int, int, int]:
    """(tasks, computed, cache hits) from the run's summary line."""
    found = re.search(rf"^{re.escape(version)}: (\d+) tasks, (\d+) computed, (\d+) cache hits", output, re.M)
    assert found, output
    return int(found[1]), int(found[2]), int(found[3])


@pytest.mark.slow
def test_a_benchmark_lives_from_the_previous_release_to_today(
    old_release: tuple[Path, str], migrated: tuple[Path, str, str], tmp_path: Path
) -> None:
    log = Transcript()
    try:
        _scenario(old_release, migrated, tmp_path, log)
    finally:
        print(log.text())
        if os.environ.get("BENCH_SCENARIO_LOG"):
            Path(os.environ["BENCH_SCENARIO_LOG"]).write_text(log.text())


def _scenario(old_release: tuple[Path, str], migrated: tuple[Path, str, str], tmp_path: Path, log: Transcript) -> None:
    started = time.monotonic()
    shared, first = old_release  # rendered at 52a9c04 (v0.2.0) with its tasks, then `make experiment`
    updated, update, second = migrated  # then `make update`, its commit (hooks) and `make experiment`
    project = copy_project(updated, tmp_path)
    db = project / "benchmark.db"
    log.note(
        "render at 52a9c04 (v0.2.0), first experiment, update, second experiment",
        f"shared by the session (with test_migrate_52a9c04.py); copied in {time.monotonic() - started:.1f} s",
    )
    assert (shared / "src" / PACKAGE / "harness").is_dir() and not (shared / "src" / "bench_harness").exists()

    # 1. The first experiment, with the old release's harness: every row computed.
    log.note("experiment with the 52a9c04 harness (the shared render's)", first)
    assert "tagged e0.0.1" in first
    tasks, fresh, _ = computed(first, "e0.0.1")
    assert tasks > 0 and fresh == tasks
    assert tags(shared) == ["e0.0.1"] and git(shared, "status", "--porcelain") == ""
    snapshot = tmp_path / "e0.0.1.db"
    shutil.copy(shared / "benchmark.db", snapshot)

    # 2. `make update` to today's template; the user commits it (through the project's hooks).
    log.note("make update ARGS=--vcs-ref v0.3.0 (the working tree), then git commit through the hooks", update)
    assert "_commit: v0.3.0" in (project / ".copier-answers.yml").read_text(), update
    assert not (project / "benchmark.db.dvc").exists(), "issue 16: the whole-database .dvc is retired by the update"
    assert "copier-benchmark 0.3.0" in git(project, "log", "--format=%s").splitlines()

    # 3. The harness changed, the user's code did not: a new experiment is recorded, nothing recomputed.
    log.note("make experiment MESSAGE='after the update'", second)
    assert computed(second, "e0.0.2") == (tasks, 0, tasks), "every row a cache hit across the key formats"
    assert "code: CHANGED since e0.0.1" in second, "the update is named as a code change"
    assert "nothing changed" not in second and "tagged e0.0.2" in second
    assert tags(project) == ["e0.0.1", "e0.0.2"]
    latest = db.read_bytes()
    layout = git(project, "ls-tree", "-r", "--name-only", "e0.0.2", "--", "results", "benchmark.db.dvc").split()
    assert layout == ["results/e0.0.1.db.dvc", "results/e0.0.2.db.dvc"], "issue 16: one file per version"
    assert git(project, "cat-file", "-t", "e0.0.1:benchmark.db.dvc") == "blob", "the old tag keeps its whole database"

    # 4. Reproduce e0.0.1 into its own worktree; the working tree, its branch and its database never move.
    done = log.make(project, "make reproduce TAG=e0.0.1", "reproduce", "TAG=e0.0.1").stdout
    assert "untouched (still on main)" in done, done
    worktree = project / "reproductions" / "e0.0.1"
    assert git(worktree, "describe", "--tags", "--exact-match") == "e0.0.1"
    assert dump(worktree / "benchmark.db") == dump(snapshot), "e0.0.1's database, row for row"
    assert git(project, "branch", "--show-current") == "main" and db.read_bytes() == latest
    assert git(project, "status", "--porcelain") == ""
    # ... and the post-update tag: its database rebuilt from results/e0.0.1.db and e0.0.2.db, row for row.
    log.make(project, "make reproduce TAG=e0.0.2", "reproduce", "TAG=e0.0.2")
    rebuilt = project / "reproductions" / "e0.0.2" / "benchmark.db"
    snapshot_latest = tmp_path / "e0.0.2.db"
    snapshot_latest.write_bytes(latest)
    assert dump(rebuilt) == dump(snapshot_latest), "e0.0.2's database, rebuilt from the per-version files"

    # 5. Back (nothing to do): nothing changed since e0.0.2, and every version is in the working database.
    third = log.make(project, "experiment after reproduce", "experiment").stdout
    assert "nothing changed since e0.0.2" in third, third
    assert tags(project) == ["e0.0.1", "e0.0.2"] and versions_in(db) == {"e0.0.1", "e0.0.2"}

    # 6. The manual way back (issue 13 point 3): checkout of the tag and its database, then `git switch main`.
    log.run(project, "git checkout e0.0.1", "git", "checkout", "--quiet", "e0.0.1")
    log.run(project, "dvc checkout (e0.0.1's database)", tool(project, "dvc"), "checkout", "--force")
    log.run(project, "git switch main", "git", "switch", "--quiet", "main")
    assert versions_in(db) == {"e0.0.1"}, "the stale database a manual checkout leaves"
    refused = log.make(project, "experiment on a stale database", "experiment", check=False)
    fix = "uv run bench rebuild-db"  # issue 16: from results/<version>.db
    assert refused.returncode == 2 and fix in refused.stderr, refused.stderr
    assert versions_in(db) == {"e0.0.1"}, "nothing appended to the stale database"
    log.run(project, "the fix the refusal names", *fix.split())
    fourth = log.make(project, "experiment after the fix", "experiment", "ARGS=--force-tag").stdout
    assert computed(fourth, "e0.0.3") == (tasks, 0, tasks)
    assert tags(project) == ["e0.0.1", "e0.0.2", "e0.0.3"]
    assert versions_in(db) == {"e0.0.1", "e0.0.2", "e0.0.3"}, "every version in the working database"
    assert git(project, "branch", "--show-current") == "main"
    assert git(project, "status", "--porcelain") == ""
    log.note("total", f"{time.monotonic() - started:.1f} s")
