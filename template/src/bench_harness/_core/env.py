"""Environment metadata recorded on every row: cheap to collect, expensive to regret.

Template-owned. Code commit, branch, dirty flag, data version, Python, OS, host, package
versions and the experiment version go into both tables, so any result can be traced back to the
exact code, data and machine that produced it.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Any

TRACKED_PACKAGES = (
    "xetrack",
    "duckdb",
    "numpy",
    "pandas",
    "scikit-learn",
    "scipy",
    "dvc",
    "openai",
    "httpx",
    "torch",
    "sentence-transformers",
)
TAG_PATTERN = re.compile(r"^e(\d+)\.(\d+)\.(\d+)$")


class ToolError(RuntimeError):
    """git or DVC cannot run, or failed where it had to succeed; the message says what to do."""


def tool_env() -> dict[str, str]:
    """No prompts, no analytics: the same environment for every git and DVC call."""
    return {**os.environ, "DVC_NO_ANALYTICS": "1", "GIT_TERMINAL_PROMPT": "0", "GIT_EDITOR": "true"}


# File descriptors of the experiment lock (_versioning): every git/DVC child inherits them, so a child
# orphaned by a killed experiment (a `dvc add` still writing) keeps the project locked until it ends.
HELD_LOCKS: list[int] = []


def run_tool(
    root: Path, *command: str, check: bool = True, timeout: float | None = None
) -> subprocess.CompletedProcess:
    """Run git/dvc in `root` with stdin closed; raise ToolError with its output when `check` fails."""
    try:
        done = subprocess.run(
            command,
            cwd=root,
            env=tool_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            pass_fds=tuple(HELD_LOCKS),
        )
    except (OSError, subprocess.SubprocessError) as error:  # git or dvc missing, or hung
        raise ToolError(f"`{command[0]}` cannot run: {error}") from error
    if check and done.returncode != 0:
        raise ToolError(f"`{' '.join(command)}` failed:\n{(done.stdout + done.stderr).strip()}")
    return done


def git(root: Path, *args: str, check: bool = True, timeout: float | None = None) -> subprocess.CompletedProcess:
    """The one way the harness runs git (versioning's workflow and the metadata below)."""
    return run_tool(root, "git", *args, check=check, timeout=timeout)


def git_output(root: Path, *args: str) -> str | None:
    """A git query's output, or None when git or the repository is missing: metadata never stops a run."""
    try:
        return git(root, *args, timeout=30).stdout.strip()
    except ToolError:
        return None


def code_commit(root: Path) -> str:
    return git_output(root, "rev-parse", "--short=12", "HEAD") or "uncommitted"


def git_branch(root: Path) -> str:
    return git_output(root, "branch", "--show-current") or ""


# Outputs of earlier experiments' analysis (reports, exports, reproductions), the experiment's own
# results file (*.db.dvc, rewritten by its `dvc add`) and the plan `make dev` annotates with its power
# figures: they cannot change a result, so they are not "dirty".
OUTPUT_PATHS = (
    ":(exclude)reports",
    ":(exclude)exports",
    ":(exclude)reproductions",
    ":(exclude)*.db.dvc",
    ":(exclude)EXPERIMENT_PLAN.md",
)


def uncommitted_files(root: Path) -> list[str]:
    """`git status --porcelain` lines: changed tracked files and untracked ones (not ignored, not outputs)."""
    status = git_output(root, "status", "--porcelain", "--untracked-files=normal", "--", ".", *OUTPUT_PATHS)
    return status.splitlines() if status else []


def git_dir(root: Path) -> Path | None:
    """The repository's own folder (.git, or a worktree's folder under it): state no commit should hold."""
    found = git_output(root, "rev-parse", "--absolute-git-dir")
    return Path(found) if found else None


def fault_point(phase: str) -> None:
    """Test hook: with BENCH_FAULT=after:<phase> the process SIGKILLs itself here (a crash, not an exception).

    The crash tests name the seam they break (after:dvc-add, after:tag, ...) instead of guessing it with sleeps.
    """
    if os.environ.get("BENCH_FAULT") == f"after:{phase}":
        sys.stdout.flush()
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)


def is_dirty(root: Path) -> bool:
    """Uncommitted code or data in git: the `git_dirty` column (the experiment refuses it by default)."""
    return bool(uncommitted_files(root))


def data_commit(root: Path, data_path: Path) -> str:
    """The commit that last changed the data: data.dvc under DVC, else the data folder itself."""
    dvc_file = root / "data.dvc"
    target = "data.dvc" if dvc_file.exists() else str(data_path.relative_to(root).parts[0])
    return git_output(root, "log", "-n", "1", "--pretty=format:%h", "--", target) or "uncommitted"


@lru_cache(maxsize=1)
def package_versions() -> str:
    """Versions of the packages that can change results, as JSON text."""
    versions = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return json.dumps(versions, sort_keys=True)


def version_key(version: str) -> tuple[int, ...]:
    """An experiment version as numbers (e0.0.10 after e0.0.9); anything else (-1,), before them all."""
    found = TAG_PATTERN.match(str(version))
    return tuple(int(x) for x in found.groups()) if found else (-1,)


def experiment_tags(root: Path) -> list[str]:
    """Experiment tags (e<major>.<minor>.<patch>) sorted as versions, oldest first."""
    listed = git_output(root, "tag", "-l", "e*") or ""
    return sorted((t for t in listed.splitlines() if TAG_PATTERN.match(t)), key=version_key)


def next_experiment_version(root: Path) -> str:
    """e0.0.N+1 after the latest experiment tag (e0.0.1 for the first experiment)."""
    tags = experiment_tags(root)
    if not tags:
        return "e0.0.1"
    major, minor, patch = version_key(tags[-1])
    return f"e{major}.{minor}.{patch + 1}"


def git_state_later(root: Path, data_path: Path) -> Callable[[], dict[str, Any]]:
    """Start the four git queries of the metadata now; the returned function waits for their columns.

    Each query is a process start: a run starts them first, so they run on another core while it
    reads and checks the items (a cached re-run of 20,000 items is about 0.15 s, 6 ms of it git).
    """
    pool = ThreadPoolExecutor(max_workers=4)
    commit, branch = pool.submit(code_commit, root), pool.submit(git_branch, root)
    dirty, data = pool.submit(is_dirty, root), pool.submit(data_commit, root, data_path)
    pool.shutdown(wait=False)
    return lambda: {
        "code_commit": commit.result(),
        "git_branch": branch.result(),
        "git_dirty": int(dirty.result()),
        "data_commit": data.result(),
    }


def environment_metadata(experiment_version: str, phase: str, git_state: dict[str, Any]) -> dict:
    """The columns every row of both tables carries (`git_state`: what git_state_later() gave)."""
    return {
        "experiment_version": experiment_version,
        "phase": phase,
        **git_state,
        "python_version": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "hostname": platform.node(),
        "packages": package_versions(),
    }
