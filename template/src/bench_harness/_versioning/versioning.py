"""Experiment versioning: pre-experiment validation, DVC, a commit and an annotated tag per experiment.

Template-owned. The guide's workflow (validate, run, `dvc add benchmark.db`, commit, `git tag -a
e0.0.N`, `dvc push`; later `git checkout e0.0.N && dvc pull`) as functions, with every question
the guide asks with `input()` turned into a flag, so nothing waits for a terminal.

The answer `versioning` decides how much of it runs:

* minimal: git only. The tag marks the code an experiment ran; the database is not versioned.
* standard: + DVC for data/ and the results database, one results commit and tag per experiment.
* maximum: + the experiment runs on its own branch `experiment/<name>`, and the data must not
  change during the run.
"""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._checks import schema
from .._core import env
from .._core.config import BenchConfig
from .._core.env import git, run_tool
from .._storage.store import column_names, quote

# Metrics where a smaller value is better (to name the best configuration in the tag message).
LOWER_IS_BETTER = ("latency", "error", "mae", "rmse", "cost", "tokens", "cpu_percent", "memory_percent")
SHORT_NAMES = {"accuracy": "acc", "model_name": "model"}
# Files that are results, not code: their changes are not "code changed since the last experiment".
NOT_CODE = (":(exclude)*.dvc", ":(exclude).gitignore")


# A step of the experiment workflow that cannot go on (git and DVC failures included); the message says what to do.
VersioningError = env.ToolError


@dataclass
class ExperimentOptions:
    """The flags of `bench experiment` / `bench preflight` (the guide's questions, answered up front)."""

    allow_dirty: bool = False
    allow_schema_change: bool = False
    renames: list[tuple[str, str]] = field(default_factory=list)
    message: str = ""
    name: str = ""
    push: bool = True


def uses_dvc(cfg: BenchConfig) -> bool:
    return cfg.versioning in ("standard", "maximum")


def dvc_executable() -> str:
    """The dvc of this environment (installed with the project at standard/maximum versioning)."""
    local = Path(sys.executable).with_name("dvc")
    found = str(local) if local.exists() else shutil.which("dvc")
    if not found:
        raise VersioningError("dvc is not installed: run `make install` (versioning standard/maximum needs it)")
    return found


def dvc(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run_tool(root, dvc_executable(), *args, check=check)


def relative(cfg: BenchConfig, path: Path) -> str:
    return str(path.resolve().relative_to(cfg.root.resolve()))


def data_folder(cfg: BenchConfig) -> Path:
    """The folder DVC tracks as data.dvc (the first part of data_path: data/)."""
    return cfg.root / Path(relative(cfg, cfg.data_path)).parts[0]


# -- pre-experiment validation ------------------------------------------------------------------
def uncommitted(cfg: BenchConfig) -> list[str]:
    """What is not committed: git's status lines, plus data/ changed but not `dvc add`-ed."""
    lines = [f"  {line}" for line in env.uncommitted_files(cfg.root)]
    if uses_dvc(cfg) and (cfg.root / "data.dvc").exists():
        if dvc(cfg.root, "status", "--quiet", "data.dvc", check=False).returncode != 0:
            lines.append("  data/ differs from data.dvc (`uv run dvc add data` then commit data.dvc)")
    return lines


def last_experiment(cfg: BenchConfig) -> tuple[str, str] | None:
    """(experiment_version, code_commit) of the last metrics row of the experiment database."""
    if not cfg.db_path.exists():
        return None
    con = sqlite3.connect(f"file:{cfg.db_path}?mode=ro", uri=True)
    try:
        columns = set(column_names(con, cfg.metrics_table))
        if not {"experiment_version", "code_commit"} <= columns:
            return None
        row = con.execute(
            f"SELECT experiment_version, code_commit FROM {quote(cfg.metrics_table)} ORDER BY rowid DESC LIMIT 1"
        ).fetchone()
    finally:
        con.close()
    return (str(row[0]), str(row[1])) if row else None


def code_changes(cfg: BenchConfig) -> list[str]:
    """The guide's code-consistency check: a diff stat since the last experiment's commit."""
    last = last_experiment(cfg)
    if last is None:
        return ["code: first experiment, nothing to compare with"]
    version, commit = last
    stat = git(cfg.root, "diff", "--stat", commit, "HEAD", "--", ".", *NOT_CODE, check=False)
    if stat.returncode != 0:
        return [f"code: cannot compare with {version}'s commit {commit} (not in this repository)"]
    if not stat.stdout.strip():
        return [f"code: unchanged since {version} ({commit})"]
    lines = [f"code: CHANGED since {version} ({commit}); results may not be comparable:"]
    lines += [f"  {line}" for line in stat.stdout.rstrip().splitlines()[-15:]]
    return lines


def preflight(cfg: BenchConfig, options: ExperimentOptions) -> tuple[list[str], list[str]]:
    """(errors, notes) before an experiment: schema drift, code changes, uncommitted work, git state."""
    errors: list[str] = []
    notes: list[str] = []
    if options.renames:
        notes += [f"schema: {line}" for line in schema.apply_renames(cfg, options.renames)]
    schema_errors, schema_notes = schema.report(schema.check(cfg), cfg.db_path.name)
    notes += schema_notes
    if schema_errors and options.allow_schema_change:
        notes.append("schema: probable renames kept as new columns (--allow-schema-change)")
    else:
        errors += schema_errors
    if git(cfg.root, "rev-parse", "--verify", "--quiet", "HEAD", check=False).returncode != 0:
        errors.append("git: no commit yet: `git add -A && git commit -m init` first")
        return errors, notes
    notes += code_changes(cfg)
    if not env.git_branch(cfg.root):
        errors.append("git: HEAD is detached (after `make reproduce`?): `git switch main` before an experiment")
    dirty = uncommitted(cfg)
    if dirty and options.allow_dirty:
        notes.append("git: uncommitted changes, recorded as git_dirty=1 (--allow-dirty):")
        notes += dirty
    elif dirty:
        errors.append("git: uncommitted changes: an experiment must be reproducible from a commit:")
        errors += dirty
        errors.append(
            "  Commit them (git add -A && git commit), or run anyway with `make experiment ARGS=--allow-dirty`."
        )
    if uses_dvc(cfg) and not (cfg.root / ".dvc").exists():
        errors.append("dvc: not initialised: `uv run dvc init` (versioning standard/maximum)")
    return errors, notes


def run_preflight(cfg: BenchConfig, options: ExperimentOptions) -> bool:
    """Print the preflight's notes and errors; True when an experiment may run."""
    try:
        errors, notes = preflight(cfg, options)
    except VersioningError as error:
        errors, notes = [str(error)], []
    print("\n".join(notes))
    if errors:
        print("\n".join(["PRE-EXPERIMENT VALIDATION FAILED:", *errors]), file=sys.stderr)
    return not errors


# -- the tag message ----------------------------------------------------------------------------
def lower_is_better(metric: str) -> bool:
    return any(part in metric for part in LOWER_IS_BETTER)


def best_row(rows: Sequence[dict[str, Any]], metrics: Sequence[str]) -> tuple[dict[str, Any], str | None]:
    """The best configuration by the first chosen metric that has values (and that metric)."""
    for metric in metrics:
        scored = [r for r in rows if isinstance(r.get(metric), (int, float))]
        if scored:
            pick = min if lower_is_better(metric) else max
            return pick(scored, key=lambda r: r[metric]), metric
    return rows[0], None


def fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def tag_message(rows: Sequence[dict[str, Any]], metrics: Sequence[str], data: str, dirty: bool = False) -> str:
    """`model=… | acc=… | data=<data commit>`: the best configuration, its score, the data version."""
    if not rows:
        return f"no metrics | data={data}"
    best, metric = best_row(rows, metrics)
    params = [k for k in best if k.startswith(schema.PREFIX)]
    varying = [k for k in params if len({str(r.get(k)) for r in rows}) > 1] or params[:1]
    parts = [f"{SHORT_NAMES.get(k[len(schema.PREFIX) :], k[len(schema.PREFIX) :])}={fmt(best[k])}" for k in varying]
    if metric:
        parts.append(f"{SHORT_NAMES.get(metric, metric)}={fmt(best[metric])}")
    parts.append(f"data={data}")
    if len(rows) > 1:
        parts.append(f"{len(rows)} configs")
    if dirty:
        parts.append("dirty")
    return " | ".join(parts)


# -- recording an experiment --------------------------------------------------------------------
def data_fingerprint(cfg: BenchConfig) -> list[tuple[str, int, int]]:
    """(path, size, mtime) of every data file: a change during a run makes its results unreliable."""
    folder = data_folder(cfg)
    if not folder.is_dir():
        return []
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files]


def record(cfg: BenchConfig, version: str, message: str, push: bool = True) -> list[str]:
    """`dvc add` the database, commit its .dvc file, tag the experiment, push to the DVC remote."""
    lines = []
    if uses_dvc(cfg):
        db = relative(cfg, cfg.db_path)
        dvc(cfg.root, "add", "--quiet", db)
        tracked = [p for p in (f"{db}.dvc", ".gitignore") if (cfg.root / p).exists()]
        git(cfg.root, "add", "--", *tracked)
        git(cfg.root, "commit", "--quiet", "--no-verify", "-m", f"experiment: {version} results", "--", *tracked)
        lines.append(f"results committed: {db}.dvc ({env.code_commit(cfg.root)})")
    git(cfg.root, "tag", "-a", version, "-m", message)
    lines.append(f"tagged {version}: {message}")
    if uses_dvc(cfg) and push:
        pushed = dvc(cfg.root, "push", "--quiet", check=False)
        if pushed.returncode == 0:
            lines.append(f"pushed data and results to the DVC remote ({cfg.dvc_remote})")
        else:
            lines.append(f"WARNING: dvc push failed, run `make push` later:\n{pushed.stderr.strip()[-800:]}")
    return lines


def mark_dirty(cfg: BenchConfig, version: str) -> None:
    """git_dirty = 1 on every row of `version` in both tables (a run allowed to start dirty)."""
    with sqlite3.connect(cfg.db_path) as con:
        for table in (cfg.predictions_table, cfg.metrics_table):
            if "git_dirty" in column_names(con, table):
                con.execute(f"UPDATE {quote(table)} SET git_dirty = 1 WHERE experiment_version = ?", (version,))
    con.close()


def switch_branch(cfg: BenchConfig, name: str) -> str:
    """Maximum rigour: move to `experiment/<name>` (created or reset at HEAD); returns the branch left."""
    previous = env.git_branch(cfg.root)
    git(cfg.root, "switch", "--quiet", "-C", f"experiment/{name}")
    return previous


def run_experiment(
    cfg: BenchConfig, options: ExperimentOptions, execute: Callable[[str], tuple[int, list[dict[str, Any]]]]
) -> int:
    """Validate, run (`execute(version)` -> (exit code, metrics rows)), record. Exit code 2: refused."""
    if not run_preflight(cfg, options):
        return 2
    version = env.next_experiment_version(cfg.root)
    dirty = options.allow_dirty and bool(uncommitted(cfg))
    try:
        previous = switch_branch(cfg, options.name or version) if cfg.versioning == "maximum" else None
    except VersioningError as error:
        print(f"{version}: {error}", file=sys.stderr)
        return 1
    try:
        before = data_fingerprint(cfg)
        code, rows = execute(version)
        if code != 0:
            return code
        if data_fingerprint(cfg) != before:
            print(f"data/ changed during the run: {version} is not tagged; restore it and re-run", file=sys.stderr)
            return 2
        if dirty:  # git_dirty comes from git alone; data changed under DVC is dirty too
            mark_dirty(cfg, version)
        message = options.message or tag_message(rows, cfg.metrics, env.data_commit(cfg.root, cfg.data_path), dirty)
        print("\n".join(record(cfg, version, message, options.push)))
    except VersioningError as error:
        print(f"{version}: {error}", file=sys.stderr)
        return 1
    finally:
        if previous:
            git(cfg.root, "switch", "--quiet", previous, check=False)
    if previous:
        print(f"{version} ran on branch experiment/{options.name or version}; back on {previous}")
    print(f"reproduce it later with: make reproduce TAG={version}")
    return 0


# -- listing and reproducing --------------------------------------------------------------------
def list_experiments(cfg: BenchConfig) -> str:
    """The experiment tags with their messages, oldest first (sorted as versions: e0.0.10 > e0.0.9)."""
    listed = git(cfg.root, "tag", "-l", "e*", "-n9", "--sort=version:refname", check=False).stdout.rstrip()
    return listed or "no experiments yet: run `make experiment`"


def cached_in_dvc(cfg: BenchConfig, path: Path) -> bool:
    """Whether this exact file is in DVC's cache (so replacing it loses nothing)."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    md5 = digest.hexdigest()
    return (cfg.root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]).exists()


def reproduce(cfg: BenchConfig, tag: str) -> list[str]:
    """Check out `tag` and restore its data and results database with DVC (checkout, else pull)."""
    if tag not in env.experiment_tags(cfg.root):
        known = ", ".join(env.experiment_tags(cfg.root)) or "none yet"
        raise VersioningError(f"no experiment tag {tag!r} (experiments: {known})")
    changed = git(cfg.root, "status", "--porcelain", "--untracked-files=no").stdout.strip()
    if changed:
        raise VersioningError(f"uncommitted changes would be lost; commit or stash them first:\n{changed}")
    lines = []
    db = cfg.db_path
    if uses_dvc(cfg) and db.exists() and not cached_in_dvc(cfg, db):
        backup = db.with_name(f"{db.stem}.before-{tag}{db.suffix}")
        db.replace(backup)
        lines.append(f"{db.name} held results no commit records: moved to {backup.name}")
    git(cfg.root, "checkout", "--quiet", tag)
    lines.append(f"checked out {tag} (detached HEAD; `git switch -` returns)")
    if not uses_dvc(cfg):
        lines.append(
            f"versioning is minimal: the database is not versioned; `uv run bench run --experiment-version {tag}` "
            "recomputes it (cached rows are reused)"
        )
        return lines
    targets = [p for p in ("data.dvc", f"{relative(cfg, db)}.dvc") if (cfg.root / p).exists()]
    if dvc(cfg.root, "checkout", "--quiet", "--force", *targets, check=False).returncode != 0:
        dvc(cfg.root, "pull", "--quiet", "--force", *targets)
        lines.append(f"pulled {', '.join(targets)} from the DVC remote")
    else:
        lines.append(f"restored {', '.join(targets)} from the DVC cache")
    return lines


def setup_dvc(cfg: BenchConfig) -> list[str]:
    """`dvc init`, analytics off, the default remote, data/ as data.dvc (what a `--trust` copy does)."""
    if not uses_dvc(cfg):
        return ["versioning is minimal: no DVC"]
    if not (cfg.root / ".git").exists():
        raise VersioningError("not a git repository: `git init` first")
    lines = []
    if not (cfg.root / ".dvc").exists():
        dvc(cfg.root, "init", "--quiet")
        lines.append("dvc init")
    dvc(cfg.root, "config", "core.analytics", "false")
    if cfg.dvc_remote:
        dvc(cfg.root, "remote", "add", "--default", "--force", "storage", cfg.dvc_remote)
        lines.append(f"DVC remote: {cfg.dvc_remote}")
    data = relative(cfg, data_folder(cfg))
    if not (cfg.root / f"{data}.dvc").exists() and (cfg.root / data).is_dir():
        git(cfg.root, "rm", "-r", "--cached", "--quiet", "--ignore-unmatch", data)
        dvc(cfg.root, "add", "--quiet", data)
        lines.append(f"{data}/ tracked by DVC as {data}.dvc")
    lines.append("now commit it: git add -A && git commit -m 'DVC set-up'")
    return lines


def push(cfg: BenchConfig) -> str:
    """`dvc push`: data and every recorded database version to the remote."""
    if not uses_dvc(cfg):
        return "versioning is minimal: nothing to push with DVC (push your git tags with `git push --tags`)"
    dvc(cfg.root, "push", "--quiet")
    return f"pushed to the DVC remote ({cfg.dvc_remote})"


# -- the pre-commit data guard --------------------------------------------------------------------
DATA_SUFFIXES = (".db", ".sqlite", ".sqlite3", ".duckdb", ".parquet", ".db-journal", ".db-wal")
MAX_GIT_FILE_BYTES = 2_000_000
LARGE_FILE_EXCEPTIONS = ("uv.lock",)


def guard(cfg: BenchConfig, files: Sequence[str]) -> list[str]:
    """Files that belong in DVC, not git: databases, data/ (standard/maximum), anything large."""
    problems = []
    data = relative(cfg, data_folder(cfg))
    for name in files:
        path = Path(name)
        if path.suffix in DATA_SUFFIXES:
            problems.append(f"{name}: a database/data file; version it with DVC (`uv run dvc add {name}`)")
        elif uses_dvc(cfg) and path.parts[:1] == (data,) and path.name != ".gitignore" and path.suffix != ".dvc":
            problems.append(f"{name}: {data}/ is versioned by DVC: `uv run dvc add {data}`, then commit data.dvc")
        elif (
            path.name not in LARGE_FILE_EXCEPTIONS
            and (cfg.root / path).is_file()
            and (cfg.root / path).stat().st_size > MAX_GIT_FILE_BYTES
        ):
            problems.append(f"{name}: larger than {MAX_GIT_FILE_BYTES // 1_000_000} MB; version it with DVC")
    return problems
