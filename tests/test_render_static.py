"""What copier renders, before anything runs: complete, fully rendered, valid Python.

Renders without tasks (no git, no uv) so these checks take a second; the renders are shared with
every other test of the session (conftest `rendered_static`), so nothing here writes into them.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TEMPLATE

JINJA = re.compile(r"\{\{|\{%|\{#")
# In a file copier copies verbatim (no .jinja suffix) `{{` is legitimate text: a Python f-string's escaped
# brace (f"{ref}^{{commit}}"), a GitHub Actions expression (${{ github.sha }}). Jinja written there by
# mistake (a file that should have been .jinja) still shows: `{{ name`, `{%` or `{#`.
JINJA_BY_MISTAKE = re.compile(r"(?<!\$)\{\{\s|\{%|\{#")


@pytest.fixture(scope="module")
def plain(rendered_static) -> Path:
    return rendered_static({})


def compiles(path: Path) -> None:
    """Compile without writing a .pyc (py_compile would write into the shared render)."""
    compile(path.read_text(), str(path), "exec")


def verbatim_sources() -> set[str]:
    """The texts of the template's files copier copies as they are (no .jinja suffix)."""
    return {
        path.read_text(encoding="utf-8", errors="ignore")
        for path in (TEMPLATE / "template").rglob("*")
        if path.is_file() and path.suffix != ".jinja"
    }


def test_no_unrendered_jinja_is_left(plain: Path) -> None:
    """What copier rendered holds no Jinja delimiter; what it copied verbatim holds no Jinja meant to render."""
    verbatim = verbatim_sources()
    leftovers = []
    for path in plain.rglob("*"):
        if not path.is_file() or ".git" in path.relative_to(plain).parts:
            continue
        text = path.read_text(encoding="utf-8", errors="ignore")
        if (JINJA_BY_MISTAKE if text in verbatim else JINJA).search(text):
            leftovers.append(str(path.relative_to(plain)))
    assert leftovers == []


def test_kind_sources_are_included_verbatim() -> None:
    """kinds/ files are pulled in with {% include %}: any Jinja delimiter in them would be rendered."""
    offenders = [
        str(path.relative_to(TEMPLATE))
        for path in (TEMPLATE / "kinds").rglob("*")
        if path.is_file() and JINJA.search(path.read_text(encoding="utf-8", errors="ignore"))
    ]
    assert offenders == []


def test_the_layout_separates_user_code_from_the_harness(plain: Path) -> None:
    package = plain / "src" / "my_benchmark"
    for user_file in ("params.py", "predict.py", "data.py", "scoring.py"):
        assert (package / user_file).is_file()
    assert not (package / "harness").exists(), "the harness is its own package, beside the user's"
    harness = plain / "src" / "bench_harness"
    for harness_file in ("__init__.py", "_run/runner.py", "_storage/store.py", "_cli/main.py", "_core/config.py"):
        assert (harness / harness_file).is_file(), harness_file
    for top in ("benchmark.toml", "EXPERIMENT_PLAN.md", "Makefile", "harness.mk", "README.md", ".copier-answers.yml"):
        assert (plain / top).is_file(), top


def test_every_python_file_compiles(plain: Path) -> None:
    for path in plain.rglob("*.py"):
        compiles(path)


def test_the_params_dataclass_is_frozen_slotted_and_rounds_floats(plain: Path) -> None:
    namespace: dict = {}
    exec(compile((plain / "src" / "my_benchmark" / "params.py").read_text(), "params.py", "exec"), namespace)
    params = namespace["Params"](regularization=0.123456789)
    assert params.regularization == 0.1235
    assert not hasattr(params, "__dict__"), "slots=True"
    assert len(namespace["grid"]()) == 3
    assert hash(namespace["Params"]()) == hash(namespace["Params"](regularization=1.00000001))


KINDS = sorted(path.name for path in (TEMPLATE / "kinds").iterdir() if (path / "predict.py").is_file())


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_renders_ruff_clean_python(kind: str, rendered_static) -> None:
    """The generated project's own ruff settings pass on everything we render, harness included:
    `ruff check` and `ruff format --check`, as rendered (issue 12 item 9: a user's first commit is clean).

    The generated pre-commit ruff hook skips the template-owned harness, on the promise that this
    test keeps it clean.
    """
    project = rendered_static({"kind": kind})
    ruff = Path(sys.executable).with_name("ruff")
    for command in (["check"], ["format", "--check"]):
        done = subprocess.run([str(ruff), *command, "--no-cache", "."], cwd=project, capture_output=True, text=True)
        assert done.returncode == 0, f"ruff {' '.join(command)}:\n{done.stdout}{done.stderr}"
    for path in project.rglob("*.py"):
        compiles(path)


def test_the_pre_commit_ruff_hook_skips_the_harness_only(plain: Path) -> None:
    """The hook skips the template-owned harness (this file checks it) and lints every file of the user's."""
    import yaml

    config = yaml.safe_load((plain / ".pre-commit-config.yaml").read_text())
    ruff_hook = next(hook for repo in config["repos"] for hook in repo["hooks"] if hook["id"] == "ruff")
    skipped = re.compile(ruff_hook["exclude"])
    python_files = [path.relative_to(plain).as_posix() for path in plain.rglob("*.py")]
    harness = {path for path in python_files if path.startswith("src/bench_harness/") or "/test_harness_" in path}
    assert harness and {path for path in python_files if skipped.search(path)} == harness
