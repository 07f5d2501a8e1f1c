"""Issue 14 row 2 and 12: hostile text in every free-text answer renders a project that parses, imports
and runs; a failed set-up says so instead of "ready"."""

from __future__ import annotations

import ast
import os
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from conftest import TEMPLATE, project_env, render, run

# Python string breakers, TOML/JSON escapes, Markdown markup, a non-BMP character.
HOSTILE = 'Ev"il """ \'\'\' \\U0001 \\N{x} \\ `code` *b* _i_ <b>&amp; # [l](u) | {{ x }} 😀 é'

HOSTILE_ANSWERS = {
    "project_name": "Evil. project - 2",
    "description": HOSTILE,
    "author_name": HOSTILE,
    "author_email": "o'brien+tag@example.co.uk",
    "questions": [HOSTILE, "# not a heading", "1. not a list"],
    "custom_segmentations": ["patient_age_bucket"],
    "dvc_remote": "../storage with spaces/{x} $HOME;#&",
    "params": [
        {"name": "model_name", "type": "str", "default": "random_forest", "values": ["random_forest", "most_frequent"]},
        {"name": "regularization", "type": "float", "default": 1, "digits": 3},
        {"name": "seed", "type": "int", "default": 0},
        {"name": "note", "type": "str", "default": HOSTILE, "values": [HOSTILE, "x" * 200]},
        {"name": "flag", "type": "bool", "default": False},
    ],
}


@pytest.fixture(scope="module")
def hostile(rendered) -> Path:
    return rendered("hostile-answers", HOSTILE_ANSWERS)


def test_every_file_an_answer_reaches_parses_back_to_the_answer(hostile: Path) -> None:
    pyproject = tomllib.loads((hostile / "pyproject.toml").read_text())["project"]
    assert pyproject["description"] == HOSTILE
    assert pyproject["authors"] == [{"name": HOSTILE, "email": HOSTILE_ANSWERS["author_email"]}]
    assert pyproject["name"] == "evil-project-2"
    config = tomllib.loads((hostile / "benchmark.toml").read_text())
    assert config["project"]["questions"] == HOSTILE_ANSWERS["questions"]
    assert config["versioning"]["dvc_remote"] == HOSTILE_ANSWERS["dvc_remote"]
    answers = yaml.safe_load((hostile / ".copier-answers.yml").read_text())
    assert answers["description"] == HOSTILE and answers["params"] == HOSTILE_ANSWERS["params"]
    for path in (hostile / "src").rglob("*.py"):
        ast.parse(path.read_text(), str(path))


def test_the_package_docstring_and_params_hold_the_text_exactly(hostile: Path) -> None:
    init = (hostile / "src" / "evil_project_2" / "__init__.py").read_text()
    docstring = ast.get_docstring(ast.parse(init))
    assert docstring is not None
    title, text = docstring.split("\n\n", 1)
    assert title == "Evil. project - 2." and " ".join(text.split()) == " ".join(HOSTILE.split())
    code = "from evil_project_2.params import GRID, Params; print(repr((GRID['note'], Params().note)))"
    shown = run(hostile, ".venv/bin/python", "-c", code).stdout
    assert ast.literal_eval(shown) == ((HOSTILE, "x" * 200), HOSTILE)


def test_markdown_shows_the_text_without_markup(hostile: Path) -> None:
    plan = (hostile / "EXPERIMENT_PLAN.md").read_text()
    assert "\\`code\\` \\*b\\* \\_i\\_ \\<b\\>\\&amp; # \\[l\\](u) \\|" in plan
    assert "2. \\# not a heading" in plan and "3. 1\\. not a list" in plan
    readme = (hostile / "README.md").read_text()
    assert readme.splitlines()[2].startswith('Ev"il """')


def test_the_project_imports_and_its_cli_runs(hostile: Path) -> None:
    run(hostile, ".venv/bin/python", "-c", "import evil_project_2, evil_project_2.params, evil_project_2.predict")
    assert "usage" in run(hostile, ".venv/bin/bench", "--help").stdout.lower()
    lint = run(hostile, ".venv/bin/ruff", "check", "--ignore", "I001", "src", check=False)
    assert lint.returncode == 0, lint.stdout


def test_a_failed_uv_sync_ends_in_set_up_incomplete_not_ready(tmp_path: Path) -> None:
    project = render(tmp_path / "p", {"versioning": "minimal"}, tasks=False)
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    uv = fake_bin / "uv"
    uv.write_text("#!/bin/sh\necho 'hatchling: invalid author email' >&2\nexit 2\n")
    uv.chmod(uv.stat().st_mode | stat.S_IEXEC)
    env = project_env()
    env["PATH"] = f"{fake_bin}{os.pathsep}{env['PATH']}"
    done = subprocess.run(
        [sys.executable, str(TEMPLATE / "hooks" / "post_copy.py")], cwd=project, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr  # copier would delete the project on a non-zero exit
    assert "SET-UP INCOMPLETE" in done.stdout and "`uv sync` failed" in done.stdout
    assert "make install" in done.stdout and "ready" not in done.stdout
    assert "invalid author email" in done.stderr
