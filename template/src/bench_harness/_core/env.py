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
from functools import lru_cache
from pathlib import Path

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


def git(root: Path, *args: str) -> str | None:
    """Output of a git command in `root`, or None when git or the repository is missing."""
    try:
        done = subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def code_commit(root: Path) -> str:
    return git(root, "rev-parse", "--short=12", "HEAD") or "uncommitted"


def git_branch(root: Path) -> str:
    return git(root, "branch", "--show-current") or ""


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
    status = git(root, "status", "--porcelain", "--untracked-files=normal", "--", ".", *OUTPUT_PATHS)
    return status.splitlines() if status else []


def git_dir(root: Path) -> Path | None:
    """The repository's own folder (.git, or a worktree's folder under it): state no commit should hold."""
    found = git(root, "rev-parse", "--absolute-git-dir")
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
    return git(root, "log", "-n", "1", "--pretty=format:%h", "--", target) or "uncommitted"


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


def experiment_tags(root: Path) -> list[str]:
    """Experiment tags (e<major>.<minor>.<patch>) sorted as versions, oldest first."""
    listed = git(root, "tag", "-l", "e*") or ""
    tags = [t for t in listed.splitlines() if TAG_PATTERN.match(t)]
    return sorted(tags, key=lambda t: tuple(int(x) for x in TAG_PATTERN.match(t).groups()))


def next_experiment_version(root: Path) -> str:
    """e0.0.N+1 after the latest experiment tag (e0.0.1 for the first experiment)."""
    tags = experiment_tags(root)
    if not tags:
        return "e0.0.1"
    major, minor, patch = (int(x) for x in TAG_PATTERN.match(tags[-1]).groups())
    return f"e{major}.{minor}.{patch + 1}"


def environment_metadata(root: Path, data_path: Path, experiment_version: str, phase: str) -> dict:
    """The columns every row of both tables carries."""
    return {
        "experiment_version": experiment_version,
        "phase": phase,
        "code_commit": code_commit(root),
        "git_branch": git_branch(root),
        "git_dirty": int(is_dirty(root)),
        "data_commit": data_commit(root, data_path),
        "python_version": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "hostname": platform.node(),
        "packages": package_versions(),
    }
