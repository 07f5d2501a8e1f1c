"""The template repository's own Python is ruff-clean (check and format), with its pyproject settings."""

from __future__ import annotations

import subprocess

from conftest import TEMPLATE, VENV_BIN


def test_the_template_repository_passes_ruff_check_and_format() -> None:
    for command in (["check", "."], ["format", "--check", "."]):
        done = subprocess.run([str(VENV_BIN / "ruff"), *command], cwd=TEMPLATE, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
