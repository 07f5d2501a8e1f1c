"""Fixtures for the template tests: render answer sets with copier's API, run what they generate.

Rendering plus `uv sync` costs ~15 s, so a rendered project is shared by every test of the same
answer set (session scope, one copy per xdist worker).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from copier import run_copy

TEMPLATE = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


def project_env(**extra: str) -> dict[str, str]:
    """The environment a generated project runs in: our uv on PATH, no prompts, DVC offline."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "BENCH_", "PYTEST_"))}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(DVC_NO_ANALYTICS="1", GIT_TERMINAL_PROMPT="0", UV_NO_PROGRESS="1", **extra)
    return env


def render(
    destination: Path,
    answers: dict[str, Any] | None = None,
    *,
    tasks: bool = True,
    vcs_ref: str = "HEAD",
    pretend: bool = False,
) -> Path:
    """Render the working tree of this template (uncommitted changes included) into `destination`.

    `pretend` asks the questions and validates the answers but writes nothing.
    """
    run_copy(
        str(TEMPLATE),
        str(destination),
        data=answers or {},
        defaults=True,
        unsafe=True,
        vcs_ref=vcs_ref,
        quiet=True,
        skip_tasks=not tasks,
        pretend=pretend,
    )
    return destination


def run(
    project: Path, *command: str, check: bool = True, timeout: float = 900, **env: str
) -> subprocess.CompletedProcess:
    """Run a command in a generated project with no terminal; fail with its output on error."""
    done = subprocess.run(
        command,
        cwd=project,
        env=project_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    if check and done.returncode != 0:
        output = f"--- stdout\n{done.stdout[-6000:]}\n--- stderr\n{done.stderr[-6000:]}"
        pytest.fail(f"`{' '.join(command)}` exited {done.returncode}\n{output}")
    return done


def make(project: Path, *targets: str, check: bool = True, **env: str) -> subprocess.CompletedProcess:
    return run(project, "make", "--no-print-directory", *targets, check=check, **env)


@pytest.fixture(scope="session")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, dict[str, Any]], Path]:
    """rendered(name, answers) -> project folder, rendered once per session for each name."""
    cache: dict[str, Path] = {}

    def get(name: str, answers: dict[str, Any] | None = None) -> Path:
        if name not in cache:
            cache[name] = render(tmp_path_factory.mktemp(name) / "project", answers)
        return cache[name]

    return get


@pytest.fixture
def toy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A hand-written toy benchmark (tests/toy.py) the harness runs in-process: no render, no uv sync."""
    import toy as toy_project

    yield from toy_project.activate(toy_project.write_project(tmp_path / "toy"), monkeypatch)
