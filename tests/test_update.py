"""`copier update` in generated projects: user edits kept, harness updated, migrations, recopy.

Releases are semver tags in a TEMPORARY copy of this repository's working tree (never tags in
the real one; tests/test_migrate_52a9c04.py updates from the real previous release instead):

* v0.1.0: the working tree as it is;
* v0.2.0: a harness change (a constant in bench_harness/__init__.py, a target in harness.mk);
* v0.3.0: a migration: the answer `author_name` becomes `author`, and the user-owned
  EXPERIMENT_PLAN.md moves to docs/, both done by migrations/migrate.py from `_migrations`.

Projects run `make update` with stdin closed (conftest.run), as CI would.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import copier
import pytest
import yaml
from conftest import TEMPLATE, RenderCache, copy_working_tree, make, run, share_bytecode
from copier import run_copy
from packaging.version import Version

HARNESS_LINE = 'HARNESS_RELEASE = "0.2.0"\n'
HARNESS_TARGET = "\n.PHONY: harness-release\nharness-release: ## the harness release\n\t@echo harness 0.2.0\n"
PACKAGE = "upd"
CONFLICT_MARKER = re.compile(r"^(<<<<<<<|>>>>>>>)( |$)", re.MULTILINE)


# --- the temporary template repository and its releases ------------------------------------------


def git(repo: Path, *args: str) -> str:
    return run(repo, "git", "-c", "user.email=t@localhost", "-c", "user.name=t", *args).stdout.strip()


def release(repo: Path, tag: str) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "--quiet", "--no-verify", "-m", f"release {tag}")
    git(repo, "tag", tag)


def change_harness(repo: Path) -> None:
    """v0.2.0: what any fix of a template-owned file looks like to a generated project."""
    init = repo / "template" / "src" / "bench_harness" / "__init__.py"
    init.write_text(init.read_text() + HARNESS_LINE)
    makefile = repo / "template" / "harness.mk"
    makefile.write_text(makefile.read_text() + HARNESS_TARGET)


def migration(version: str, *arguments: str) -> dict[str, Any]:
    """A `_migrations` entry as README's "Releasing the template" describes it."""
    script = ["{{ _copier_python }}", "{{ _copier_conf.src_path }}/migrations/migrate.py"]
    return {"version": version, "when": "{{ _stage == 'before' }}", "command": [*script, *arguments]}


def rename_and_move(repo: Path) -> None:
    """v0.3.0: answer author_name -> author, EXPERIMENT_PLAN.md -> docs/, with their migrations."""
    rename = re.compile(r"\bauthor_name\b")
    for path in [repo / "copier.yml", *(repo / "template").rglob("*.jinja")]:
        text = path.read_text()
        if rename.search(text):
            path.write_text(rename.sub("author", text))
    config_path = repo / "copier.yml"
    config = yaml.safe_load(config_path.read_text())
    assert "author" in config and "EXPERIMENT_PLAN.md" in config["_skip_if_exists"]
    config["_skip_if_exists"] = [
        "docs/EXPERIMENT_PLAN.md" if p == "EXPERIMENT_PLAN.md" else p for p in config["_skip_if_exists"]
    ]
    config["_migrations"] = [
        *(config.get("_migrations") or []),
        migration("0.3.0", "rename-answer", "author_name", "author"),
        migration("0.3.0", "move", "EXPERIMENT_PLAN.md", "docs/EXPERIMENT_PLAN.md"),
    ]
    config_path.write_text(yaml.safe_dump(config, sort_keys=False, width=1000, allow_unicode=True))
    (repo / "template" / "docs").mkdir()
    (repo / "template" / "EXPERIMENT_PLAN.md.jinja").rename(repo / "template" / "docs" / "EXPERIMENT_PLAN.md.jinja")


@pytest.fixture(scope="session")
def releases(render_cache: RenderCache) -> Path:
    """A copy of this template with the tags v0.1.0, v0.2.0 and v0.3.0 (HEAD), once per session (xdist's
    workers share it: the tests render from it, never change it)."""
    return render_cache.build("releases-update", make_releases)


def make_releases(folder: Path) -> Path:
    repo = folder / "copier-benchmark"
    repo.mkdir()
    copy_working_tree(repo)
    git(repo, "init", "--quiet", "--initial-branch=main")
    release(repo, "v0.1.0")
    change_harness(repo)
    release(repo, "v0.2.0")
    rename_and_move(repo)
    release(repo, "v0.3.0")
    return repo


def render_release(
    template: Path, destination: Path, ref: str, answers: dict[str, Any], *, tasks: bool, donor: Path | None = None
) -> Path:
    """copier copy of a release; `donor`: a finished render whose bytecode the new environment links (the
    files of the packages both install are the same uv cache files), so its first command starts warm."""
    run_copy(
        str(template), str(destination), data=answers, defaults=True, unsafe=True, vcs_ref=ref, quiet=True,
        skip_tasks=not tasks,
    )  # fmt: skip
    if donor is not None and (destination / ".venv").is_dir():
        share_bytecode(donor / ".venv", destination / ".venv")
    return destination


# --- what a project looks like -------------------------------------------------------------------


def answers_of(project: Path) -> dict[str, Any]:
    return yaml.safe_load((project / ".copier-answers.yml").read_text())


def changed_files(project: Path) -> set[str]:
    """Paths `git status` reports (staged, unstaged, untracked), renames as their new path."""
    lines = run(project, "git", "status", "--porcelain", "--untracked-files=all").stdout.splitlines()
    return {line[3:].split(" -> ")[-1].strip('"') for line in lines}


def files_with_conflict_markers(project: Path) -> list[str]:
    listed = run(project, "git", "ls-files", "-co", "--exclude-standard", "--deduplicate").stdout.splitlines()
    return [
        name
        for name in listed
        if (project / name).is_file() and CONFLICT_MARKER.search((project / name).read_text(errors="replace"))
    ]


def rows_per_version(db: Path, table: str) -> dict[str, int]:
    with sqlite3.connect(db) as con:
        rows = con.execute(f'SELECT experiment_version, COUNT(*) FROM "{table}" GROUP BY 1 ORDER BY 1').fetchall()
    return dict(rows)


def tables(db: Path) -> set[str]:
    with sqlite3.connect(db) as con:
        return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def edit(path: Path, change: Callable[[str], str]) -> str:
    text = change(path.read_text())
    path.write_text(text)
    return text


def user_edits(project: Path) -> dict[str, str]:
    """What a user does after the copy; returns the edited files' content by path."""
    src = project / "src" / PACKAGE
    predict_line = "PREDICT_VERSION: str | None = None"
    assert predict_line in (src / "predict.py").read_text()
    return {
        f"src/{PACKAGE}/predict.py": edit(
            src / "predict.py", lambda t: t.replace(predict_line, 'PREDICT_VERSION = "u1"')
        ),
        f"src/{PACKAGE}/params.py": edit(
            src / "params.py",
            lambda t: (
                t + "\n# Mine: the baseline is not worth running any more.\n"
                'GRID["model_name"] = tuple(m for m in GRID["model_name"] if m != "most_frequent")\n'
            ),
        ),
        "Makefile": edit(
            project / "Makefile", lambda t: t + "\nhello: ## a target of mine\n\t@echo hello from $(CURDIR)\n"
        ),
        "EXPERIMENT_PLAN.md": edit(project / "EXPERIMENT_PLAN.md", lambda t: t + "\nMy note on the design.\n"),
    }


def commit(project: Path, message: str, *, hooks: bool = False) -> None:
    """`git commit`; `hooks`: through the project's pre-commit hooks (ruff, schema drift, conflict markers)."""
    git(project, "add", "-A")
    git(project, "commit", "--quiet", "-m", message, *([] if hooks else ["--no-verify"]))


def experiment(project: Path, version: str) -> None:
    out = make(project, "experiment", f"MESSAGE=run {version}").stdout
    assert f"tagged {version}" in out, out


# --- the tests -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_update_keeps_user_edits_updates_the_harness_and_migrates(
    releases: Path, render_cache: RenderCache, tmp_path: Path
) -> None:
    """Acceptance: render at an old tag, edit and run as a user would, `make update` twice, run again."""
    answers = {"project_name": PACKAGE, "author_name": "Jane Doe", "data_format": "csv"}
    donor = render_cache.get({}, tasks=True)
    project = render_release(releases, tmp_path / "project", "v0.1.0", answers, tasks=True, donor=donor)
    # The answers file is committed by the copy: `copier update` reads it from git.
    assert run(project, "git", "ls-files", ".copier-answers.yml").stdout.strip() == ".copier-answers.yml"
    assert changed_files(project) == set()
    assert answers_of(project)["_commit"] == "v0.1.0"

    edited = user_edits(project)
    commit(project, "my edits")
    experiment(project, "e0.0.1")
    db = project / "benchmark.db"
    schema = tables(db)
    per_config = rows_per_version(db, "predictions")["e0.0.1"] // 2  # 2 configurations left in the grid
    assert rows_per_version(db, "metrics") == {"e0.0.1": 2}

    # 1. An update across a harness change.
    out = make(project, "update", "ARGS=--vcs-ref v0.2.0").stdout
    assert "schema: ok" in out, out
    assert changed_files(project) == {".copier-answers.yml", "harness.mk", "src/bench_harness/__init__.py"}
    assert all((project / path).read_text() == text for path, text in edited.items())
    assert (project / "src" / "bench_harness" / "__init__.py").read_text().endswith(HARNESS_LINE)
    assert make(project, "harness-release").stdout.strip() == "harness 0.2.0"
    assert "hello from" in make(project, "hello").stdout
    assert files_with_conflict_markers(project) == []
    assert not (project / "data" / "sample.jsonl").exists()  # the seed is not re-rendered beside the csv
    assert answers_of(project)["_commit"] == "v0.2.0"
    commit(project, "copier-benchmark 0.2.0")

    # 2. An update across a migration: the renamed answer keeps its value, the moved file its edits.
    out = make(project, "update").stdout
    assert "answer 'author_name' renamed to 'author'" in out and "schema: ok" in out, out
    answers = answers_of(project)
    assert answers["_commit"] == "v0.3.0"
    assert answers["author"] == "Jane Doe" and "author_name" not in answers
    assert 'authors = [{ name = "Jane Doe"' in (project / "pyproject.toml").read_text()
    assert not (project / "EXPERIMENT_PLAN.md").exists()
    assert (project / "docs" / "EXPERIMENT_PLAN.md").read_text() == edited.pop("EXPERIMENT_PLAN.md")
    assert all((project / path).read_text() == text for path, text in edited.items())
    assert files_with_conflict_markers(project) == []
    commit(project, "copier-benchmark 0.3.0", hooks=True)
    experiment(project, "e0.0.2")
    assert tables(db) == schema
    assert rows_per_version(db, "predictions")["e0.0.2"] == 2 * per_config
    assert rows_per_version(db, "metrics") == {"e0.0.1": 2, "e0.0.2": 2}


@pytest.mark.slow
def test_update_fails_on_conflict_markers(releases: Path, tmp_path: Path) -> None:
    """The user edited the end of harness.mk, where v0.2.0 adds a target: `make update` says so."""
    project = render_release(releases, tmp_path / "project", "v0.1.0", {"project_name": PACKAGE}, tasks=False)
    git(project, "init", "--quiet", "--initial-branch=main")
    edit(project / "harness.mk", lambda t: t + "\nmine: ## my target in the wrong file\n\t@echo mine\n")
    git(project, "add", "-A")
    git(project, "commit", "--quiet", "--no-verify", "-m", "rendered, then edited harness.mk")
    done = make(project, "update", "ARGS=--vcs-ref v0.2.0", check=False)
    assert done.returncode != 0
    assert "conflict markers" in done.stderr and "harness.mk" in done.stderr, done.stderr
    assert files_with_conflict_markers(project) == ["harness.mk"]
    assert (project / "src" / "bench_harness" / "__init__.py").read_text().endswith(HARNESS_LINE)


@pytest.mark.slow
def test_recopy_keeps_user_files_and_converted_data(releases: Path, tmp_path: Path) -> None:
    """`copier recopy` re-renders everything: user files stay, the hook neither re-adds the seed nor commits."""
    answers = {"project_name": PACKAGE, "data_format": "csv", "versioning": "minimal", "engine": "sqlite"}
    project = render_release(releases, tmp_path / "project", "v0.1.0", answers, tasks=True)
    data = project / "data" / "sample.csv"
    assert data.is_file() and not (project / "data" / "sample.jsonl").exists()
    before = data.read_bytes()
    edited = user_edits(project)
    commit(project, "my edits")
    head = git(project, "rev-parse", "HEAD")

    run(project, "copier", "recopy", "--trust", "--defaults", "--overwrite", "--vcs-ref", "v0.2.0")
    assert all((project / path).read_text() == text for path, text in edited.items())
    assert (project / "src" / "bench_harness" / "__init__.py").read_text().endswith(HARNESS_LINE)
    assert data.read_bytes() == before and not (project / "data" / "sample.jsonl").exists()
    assert git(project, "rev-parse", "HEAD") == head  # the user reviews a recopy before committing
    assert changed_files(project) == {".copier-answers.yml", "harness.mk", "src/bench_harness/__init__.py"}
    assert make(project, "harness-release").stdout.strip() == "harness 0.2.0"


# --- the template's own versioning ---------------------------------------------------------------


def template_config() -> dict[str, Any]:
    return yaml.safe_load((TEMPLATE / "copier.yml").read_text())


def test_min_copier_version_is_set_and_met() -> None:
    minimum = Version(str(template_config()["_min_copier_version"]))
    assert Version("9.11.0") <= minimum <= Version(copier.__version__)


def owned_by_user_in_readme() -> set[str]:
    """The backquoted paths of the "yours" column of the generated README's "Who owns what" table."""
    readme = (TEMPLATE / "template" / "README.md.jinja").read_text()
    section = readme.split("## Who owns what", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| yours")]
    cells = [row.split(" | ")[0] for row in rows]
    return {path.replace("{{ package_name }}", "*") for cell in cells for path in re.findall(r"`([^`]+)`", cell)}


# Kept in _skip_if_exists for projects rendered before the file left the template (the user keeps a copy);
# a new project has no such file, so its README does not list it.
NO_LONGER_RENDERED = {"src/*/local_server.py"}


def test_who_owns_what_table_matches_skip_if_exists() -> None:
    """The README's "yours" column is exactly the files `copier update` never overwrites (and still renders)."""
    patterns = {p.removesuffix("**") for p in template_config()["_skip_if_exists"]}
    assert NO_LONGER_RENDERED <= patterns
    assert owned_by_user_in_readme() == patterns - NO_LONGER_RENDERED


# --- migrations/migrate.py, in process -----------------------------------------------------------


@pytest.fixture(scope="module")
def migrate() -> Any:
    spec = importlib.util.spec_from_file_location("migrate", TEMPLATE / "migrations" / "migrate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ANSWERS = """# Changes here will be overwritten by Copier; NEVER EDIT MANUALLY
_commit: v0.1.0
_src_path: /somewhere
author_name: Jane Doe
package_name: pkg
params:
-   default: 1
    name: seed
    type: int
"""


def test_rename_answer_is_idempotent_and_keeps_the_rest(migrate: Any, tmp_path: Path) -> None:
    answers = tmp_path / ".copier-answers.yml"
    answers.write_text(ANSWERS)
    assert migrate.rename_answer("params", "parameters", answers)
    assert migrate.rename_answer("author_name", "author", answers)
    assert not migrate.rename_answer("author_name", "author", answers)  # done already: nothing changes
    expected = ANSWERS.replace("author_name:", "author:").replace("params:", "parameters:")
    assert answers.read_text() == expected
    assert yaml.safe_load(answers.read_text())["parameters"] == [{"default": 1, "name": "seed", "type": "int"}]


def test_rename_answer_drops_the_old_key_when_the_new_one_is_answered(migrate: Any, tmp_path: Path) -> None:
    answers = tmp_path / ".copier-answers.yml"
    answers.write_text(ANSWERS + "author: Someone Else\n")
    assert migrate.rename_answer("author_name", "author", answers)
    loaded = yaml.safe_load(answers.read_text())
    assert loaded["author"] == "Someone Else" and "author_name" not in loaded


def test_move_expands_answers_and_never_overwrites(
    migrate: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".copier-answers.yml").write_text(ANSWERS)
    (tmp_path / "src" / "pkg").mkdir(parents=True)
    (tmp_path / "src" / "pkg" / "old.py").write_text("mine\n")
    old, new = migrate.expand("src/{package_name}/old.py"), migrate.expand("src/{package_name}/lib/new.py")
    assert new == Path("src/pkg/lib/new.py")
    assert migrate.move(old, new) and (tmp_path / new).read_text() == "mine\n" and not old.exists()
    assert not migrate.move(old, new)  # done already
    old.write_text("another\n")
    assert not migrate.move(old, new) and old.read_text() == "another\n"  # the target exists: left for the user


def test_harness_compat_writes_re_exports_only_for_imported_modules(
    migrate: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """0.3.0: files importing the old src/<pkg>/harness/ get re-export modules there, once, never over a file."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".copier-answers.yml").write_text(ANSWERS)
    package = tmp_path / "src" / "pkg"
    package.mkdir(parents=True)
    (package / "predict.py").write_text("from .harness.errors import BenchmarkError\nfrom .harness import segments\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_kind.py").write_text('ex = importlib.import_module(f"{PACKAGE}.harness.executors")\n')
    written = migrate.harness_compat()
    assert sorted(path.name for path in written) == ["__init__.py", "errors.py", "executors.py", "segments.py"]
    errors = (package / "harness" / "errors.py").read_text()
    assert 'MOVED_TO = "bench_harness._core.errors"' in errors
    compile(errors, "errors.py", "exec")
    assert migrate.harness_compat() == []  # done already
    (package / "harness" / "errors.py").write_text("mine\n")
    assert migrate.harness_compat() == [] and (package / "harness" / "errors.py").read_text() == "mine\n"
    (package / "predict.py").write_text("from bench_harness import BenchmarkError\n")
    (tmp_path / "tests" / "test_kind.py").unlink()
    shutil.rmtree(package / "harness")
    assert migrate.harness_compat() == [] and not (package / "harness").exists()  # nothing imports it
