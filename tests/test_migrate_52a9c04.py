"""A benchmark rendered at commit 52a9c04 (the release before bench_harness) updates to today's layout.

Issue 12 item 8 and issue 13 point 1, from the real commit: in a temporary clone of this
repository, 52a9c04 is tagged v0.2.0 and the working tree (uncommitted changes included) v0.3.0.
A project rendered at v0.2.0 (layout src/<pkg>/harness/, old-style predict returning full rows)
runs an experiment, then `make update`: its files stay byte for byte what they were, the old
harness imports are served by the migration's re-export modules, `make test` passes, and the
next experiment computes nothing (every row a cache hit: same code version, configuration and
input digest, whatever the key format).
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
from pathlib import Path

import pytest
from conftest import TEMPLATE, RenderCache, copy_project, make
from test_update import commit, copy_working_tree, git, render_release

OLD_RELEASE = "52a9c04"
PACKAGE = "mig"  # test_long_life.py shares this module's render: one package name for both
USER_FILES = [
    f"src/{PACKAGE}/predict.py",
    f"src/{PACKAGE}/data.py",
    f"src/{PACKAGE}/params.py",
    f"src/{PACKAGE}/scoring.py",
    "tests/test_predict_contract.py",
    "Makefile",
    "README.md",
    "EXPERIMENT_PLAN.md",
]


@pytest.fixture(scope="session")
def releases(render_cache: RenderCache) -> Path:
    """A clone of this repository: v0.2.0 = commit 52a9c04, v0.3.0 = the working tree (once per session)."""
    return render_cache.build("releases-52a9c04", clone_with_releases)


@pytest.fixture(scope="session")
def old_release(render_cache: RenderCache, releases: Path) -> tuple[Path, str]:
    """(project, output): a project rendered at v0.2.0 (52a9c04) with its tasks, after its first experiment
    (`make experiment`, e0.0.1), and that experiment's output. Made once per session, shared by this
    module and test_long_life.py: READ it; a test copies it with conftest.copy_project."""

    def render_and_run(folder: Path) -> Path:
        answers, donor = {"project_name": PACKAGE}, render_cache.get({}, tasks=True)
        project = render_release(releases, folder / "project", "v0.2.0", answers, tasks=True, donor=donor)
        out = make(project, "experiment", "MESSAGE=first").stdout
        (folder / FIRST_EXPERIMENT).write_text(out)
        return project

    project = render_cache.build("v0.2.0-after-e0.0.1", render_and_run)
    return project, (project.parent / FIRST_EXPERIMENT).read_text()


FIRST_EXPERIMENT = "first-experiment.out"


@pytest.fixture(scope="session")
def migrated(render_cache: RenderCache, old_release: tuple[Path, str]) -> tuple[Path, str, str]:
    """(project, update output, next experiment's output): old_release's project after `make update` to
    v0.3.0 (the working tree), committed through its hooks, then `make experiment`. Made once per
    session, shared by this module and test_long_life.py: READ it; a test copies it."""
    shared, _ = old_release

    def update_and_run(folder: Path) -> Path:
        project = copy_project(shared, folder)
        (folder / UPDATE_OUTPUT).write_text(make(project, "update", "ARGS=--vcs-ref v0.3.0").stdout)
        commit(project, "copier-benchmark 0.3.0", hooks=True)
        (folder / NEXT_EXPERIMENT).write_text(make(project, "experiment", "MESSAGE=after the update").stdout)
        return project

    project = render_cache.build("v0.3.0-after-update", update_and_run)
    return project, (project.parent / UPDATE_OUTPUT).read_text(), (project.parent / NEXT_EXPERIMENT).read_text()


UPDATE_OUTPUT, NEXT_EXPERIMENT = "update.out", "next-experiment.out"


def clone_with_releases(parent: Path) -> Path:
    """A clone of this repository in `parent`: tag v0.2.0 = commit 52a9c04, tag v0.3.0 = the working tree."""
    repo = parent / "copier-benchmark"
    subprocess.run(["git", "clone", "--quiet", str(TEMPLATE), str(repo)], check=True)
    git(repo, "tag", "v0.2.0", OLD_RELEASE)
    git(repo, "rm", "-r", "--quiet", ".")
    copy_working_tree(repo)
    git(repo, "add", "-A")
    git(repo, "commit", "--quiet", "--no-verify", "--allow-empty", "-m", "release v0.3.0")
    git(repo, "tag", "v0.3.0")
    return repo


@pytest.mark.slow
def test_a_benchmark_from_52a9c04_updates_and_keeps_its_cache(
    releases: Path, old_release: tuple[Path, str], migrated: tuple[Path, str, str], tmp_path: Path
) -> None:
    old, first = old_release  # rendered at 52a9c04, after its first experiment
    project, out, second = migrated  # the same project after `make update`, its commit and an experiment
    old_harness = project / "src" / PACKAGE / "harness"
    assert (old / "src" / PACKAGE / "harness" / "errors.py").is_file() and not (old / "src" / "bench_harness").exists()
    predict_source = (old / "src" / PACKAGE / "predict.py").read_text()
    assert "from .harness.errors import" in predict_source and '"input_id":' in predict_source  # old style
    assert "tagged e0.0.1" in first, first  # the old release's first experiment (made by the fixture)
    assert git(old, "status", "--porcelain") == ""  # the experiment committed: `make update` needs that
    assert "re-exports what your files import" in out, out

    # The new layout: the harness is bench_harness; the old folder holds only the re-export modules.
    assert (project / "src" / "bench_harness" / "__init__.py").is_file()
    assert "src/bench_harness" in (project / "pyproject.toml").read_text()
    compat = sorted(path.name for path in old_harness.glob("*.py"))
    assert compat == ["__init__.py", "datafiles.py", "errors.py", "segments.py"], compat
    for path in old_harness.glob("*.py"):
        text = path.read_text()
        assert "Compatibility re-exports written by copier-benchmark's 0.3.0 migration" in text
        assert re.findall(r"^from \S+ import", text, re.MULTILINE) == ["from __future__ import", "from typing import"]
    # The user's files are exactly as they were.
    assert {name: (project / name).read_bytes() for name in USER_FILES} == {
        name: (old / name).read_bytes() for name in USER_FILES
    }
    assert "_commit: v0.3.0" in (project / ".copier-answers.yml").read_text()
    assert "copier-benchmark 0.3.0" in git(project, "log", "--format=%s").splitlines(), "committed, hooks passed"

    # Issue 16: the whole-database benchmark.db.dvc is retired; benchmark.db stays, the working database.
    assert "results are now versioned per experiment" in out, out
    assert not (project / "benchmark.db.dvc").exists() and (project / "benchmark.db").exists()
    assert git(project, "ls-files", "benchmark.db.dvc") == ""

    assert re.search(r"e0\.0\.2: (\d+) tasks, 0 computed, \1 cache hits", second), second
    # The new layout: each version's own rows in results/<version>.db (the pre-update e0.0.1 exported once).
    assert git(project, "ls-files", "results").split() == ["results/e0.0.1.db.dvc", "results/e0.0.2.db.dvc"]
    for version in ("e0.0.1", "e0.0.2"):
        with sqlite3.connect(project / "results" / f"{version}.db") as con:
            held = {r[0] for r in con.execute("SELECT DISTINCT experiment_version FROM predictions")}
        con.close()
        assert held == {version}

    # In a copy: the generated tests pass, and running the migration again changes nothing.
    project = copy_project(project, tmp_path)
    make(project, "test")
    script = releases / "migrations" / "migrate.py"
    subprocess.run(["python3", str(script), "harness-compat"], cwd=project, check=True, capture_output=True)
    subprocess.run(["python3", str(script), "results-layout"], cwd=project, check=True, capture_output=True)
    assert git(project, "status", "--porcelain", "--untracked-files=all") == ""
