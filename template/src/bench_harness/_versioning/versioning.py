"""Experiment versioning: pre-experiment validation, DVC, a commit and an annotated tag per experiment.

Template-owned. The guide's workflow (validate, run, `dvc add benchmark.db`, commit, `git tag -a
e0.0.N`, `dvc push`; later `git checkout e0.0.N && dvc pull`) as functions, with every question
the guide asks with `input()` turned into a flag, so nothing waits for a terminal.

The answer `versioning` decides how much of it runs:

* minimal: git only. The tag marks the code an experiment ran; the database is not versioned.
* standard: + DVC for data/ and the results, one results commit and tag per experiment. Each experiment's
  own rows go to results/<version>.db (one small SQLite file per version, its own .dvc), so DVC stores
  per experiment what that experiment added; benchmark.db is the working database, rebuilt from those
  files when it is missing or for `make reproduce`. Tags recorded before this layout (benchmark.db.dvc)
  still reproduce from their whole-database file.
* maximum: + the experiment runs on its own branch `experiment/<name>`, and the data must not
  change during the run.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .._checks import schema
from .._core import env
from .._core.config import BenchConfig
from .._core.env import HELD_LOCKS, git, run_tool, tool_env, version_key
from .._results import registry
from .._storage import versionfiles
from .._storage.store import column_names, quote
from . import dvc_cli

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
    # Record a new experiment even when nothing changed since the last one (same code, data, parameters).
    force_tag: bool = False
    # Whether "nothing changed" may be judged: not with --limit or --no-cache (a different experiment).
    check_unchanged: bool = True


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
    """`dvc <args>` in `root`: in this process when DVC is installed here (dvc_cli.py: half a second less
    per command), else the executable; a failure raises VersioningError with DVC's output when `check`."""
    if not dvc_cli.available():
        return run_tool(root, dvc_executable(), *args, check=check)
    done = dvc_cli.run(root, args)
    if check and done.returncode != 0:
        raise VersioningError(f"`dvc {' '.join(args)}` failed:\n{(done.stdout + done.stderr).strip()}")
    return done


def relative(cfg: BenchConfig, path: Path) -> str:
    """`path` relative to the project, as git and DVC name it: its folder resolved, not a symlink it is."""
    located = path.parent.resolve() / path.name
    try:
        return str(located.relative_to(cfg.root.resolve()))
    except ValueError:
        raise VersioningError(f"{path} is outside the project: git and DVC version files inside {cfg.root}") from None


def symlinked_database(cfg: BenchConfig) -> list[str]:
    """A database that is a symlink cannot be versioned: `dvc add` would replace the link with a copy
    (later experiments then write the copy, the file it pointed to goes stale)."""
    if not uses_dvc(cfg) or not cfg.db_path.is_symlink():
        return []
    target, db = cfg.db_path.resolve(), cfg.db_path.name
    return [
        f"database: {db} is a symlink to {target}: DVC versions the file itself and would replace the link.",
        f"  Keep the database in the project: rm {db} && mv {target} {db}  (or set [database] path in benchmark.toml)",
    ]


def data_folder(cfg: BenchConfig) -> Path:
    """The folder DVC tracks as data.dvc (the first part of data_path: data/)."""
    return cfg.root / Path(relative(cfg, cfg.data_path)).parts[0]


# -- pre-experiment validation ------------------------------------------------------------------
def uncommitted(cfg: BenchConfig) -> list[str]:
    """What is not committed: git's status lines, data/ changed but not `dvc add`-ed, a rescored results file."""
    lines = [f"  {line}" for line in env.uncommitted_files(cfg.root)]
    if uses_dvc(cfg) and (cfg.root / "data.dvc").exists():
        if dvc(cfg.root, "status", "--quiet", "data.dvc", check=False).returncode != 0:
            lines.append("  data/ differs from data.dvc (`uv run dvc add data` then commit data.dvc)")
    if uses_dvc(cfg):
        lines += rescored_uncommitted(cfg)
    return lines


def rescore_commit_command(pointer: str, version: str) -> str:
    return f"git add {pointer} && git commit -m '{version} rescored'"


def rescored_uncommitted(cfg: BenchConfig) -> list[str]:
    """Results files of tagged versions changed since committed (`make rescore` re-exported them), with the fix.

    *.db.dvc files are outputs to git status (an interrupted experiment's own pointer must not stop its
    resume), so a rescored version's pointer is found here: a tagged version whose pointer differs from
    the one committed at HEAD (or, absent there, at its tag: maximum's copies from the tag are not changes).
    Left uncommitted, a rebuild (fresh clone, reproduce, rebuild-db) would silently drop the rescore.
    """
    folder = relative(cfg, results_folder(cfg))
    suffix = versionfiles.SUFFIX + ".dvc"
    status = git(cfg.root, "status", "--porcelain", "--untracked-files=all", "--", f"{folder}/*{suffix}", check=False)
    tags = set(env.experiment_tags(cfg.root)) if status.stdout.strip() else set()
    lines = []
    for line in status.stdout.splitlines():
        pointer = line[3:].strip()
        version = Path(pointer).name[: -len(suffix)]
        if version not in tags or not (cfg.root / pointer).is_file():
            continue
        committed = show_file(cfg, "HEAD", pointer)
        committed = show_file(cfg, version, pointer) if committed is None else committed
        if (cfg.root / pointer).read_text() != committed:
            lines.append(
                f"  {line.strip()}: {version}'s results were re-exported by `make rescore`; "
                f"commit it: {rescore_commit_command(pointer, version)}"
            )
    return lines


def show_file(cfg: BenchConfig, rev: str, path: str) -> str | None:
    """`path`'s text at `rev`, or None when it is not committed there."""
    shown = git(cfg.root, "show", f"{rev}:{path}", check=False)
    return shown.stdout if shown.returncode == 0 else None


def last_experiment(cfg: BenchConfig) -> tuple[str, str] | None:
    """(experiment_version, code_commit) of the last metrics row of the experiment database."""
    if not cfg.db_path.exists():
        return None
    con = sqlite3.connect(f"file:{cfg.db_path}?mode=ro", uri=True)
    try:
        columns = set(column_names(con, cfg.metrics_table))
        if not {"experiment_version", "code_commit"} <= columns:
            return None
        # Rows without a commit (rescores before it was recorded, hand-logged rows) cannot be compared with.
        row = con.execute(
            f"SELECT experiment_version, code_commit FROM {quote(cfg.metrics_table)} "
            "WHERE code_commit IS NOT NULL AND code_commit NOT IN ('', 'uncommitted') ORDER BY rowid DESC LIMIT 1"
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
    errors += symlinked_database(cfg) or database_mismatch(cfg)
    if (journal := Journal.load(cfg)) is not None:
        notes.append(f"experiment {journal.version} was interrupted after `{journal.phase}`: `make experiment` ends it")
    elif (branch := env.git_branch(cfg.root)).startswith("experiment/"):
        errors.append(f"git: on branch {branch} (an experiment's branch): `git switch main` before an experiment")
    return errors, notes


def recorded_versions(cfg: BenchConfig) -> set[str]:
    """The experiment versions the working database holds metrics for."""
    if not cfg.db_path.exists():
        return set()
    con = sqlite3.connect(f"file:{cfg.db_path}?mode=ro", uri=True)
    try:
        if "experiment_version" not in column_names(con, cfg.metrics_table):
            return set()
        return {r[0] for r in con.execute(f"SELECT DISTINCT experiment_version FROM {quote(cfg.metrics_table)}")}
    finally:
        con.close()


def database_mismatch(cfg: BenchConfig) -> list[str]:
    """A database that does not belong here: missing or older than the latest tagged experiment.

    After `git checkout <tag>` (or a fresh clone) the working database is another version: an experiment
    appended to it would drop every later version from the results.
    """
    tags = env.experiment_tags(cfg.root)
    if not uses_dvc(cfg) or not tags:
        return []
    latest, db = tags[-1], relative(cfg, cfg.db_path)
    per_version = at_tag(cfg, latest, results_path(cfg, latest))
    if not per_version and not at_tag(cfg, latest, f"{db}.dvc"):
        return []  # that experiment did not version its results (not recorded with DVC)
    held = recorded_versions(cfg)
    if latest in held:
        return []
    if not cfg.db_path.exists():
        state = "is missing"
    else:
        state = f"holds up to {max(held, key=version_key)}" if held else "holds no experiment"
    fix = REBUILD_COMMAND if per_version else f"uv run dvc get . {db} --rev {latest} --out {db} --force"
    return [
        f"database: {db} {state}, not the latest experiment {latest}: it belongs to another checkout.",
        f"  Restore the latest: {fix}",
    ]


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
    """The metric's direction, as the metric registry (_results/metrics.yml) declares it."""
    return not registry.higher_is_better(metric)


def best_row(rows: Sequence[dict[str, Any]], metrics: Sequence[str]) -> tuple[dict[str, Any], str | None]:
    """The best configuration by the first chosen metric that has values (and that metric)."""
    for metric in metrics:
        scored = [r for r in rows if isinstance(r.get(metric), (int, float))]
        if scored:
            pick = min if lower_is_better(metric) else max
            return pick(scored, key=lambda r: r[metric]), metric
    return rows[0], None


def headline_metrics(cfg: BenchConfig) -> list[str]:
    """The metrics a tag message tries in turn: the kind's quality measure (the report's headline: accuracy,
    mae for regression) first, then the chosen metrics in their order (which start with latency)."""
    return list(dict.fromkeys((cfg.quality, *cfg.metrics)))


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
# -- one experiment at a time ---------------------------------------------------------------------
ORPHAN_WAIT_SECONDS = 120.0


def state_dir(cfg: BenchConfig) -> Path:
    """Where the lock and the journal live: the git folder (never committed, never "dirty")."""
    return env.git_dir(cfg.root) or cfg.root


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ExperimentLock:
    """An exclusive fcntl lock on <git dir>/bench-experiment.lock, naming its holder.

    The kernel drops it when its holder dies, so it is never stale; git/DVC children inherit it
    (HELD_LOCKS), so an orphaned `dvc add` keeps the project locked until it has written its file.
    """

    def __init__(self, cfg: BenchConfig):
        self.path = state_dir(cfg) / "bench-experiment.lock"
        self.fd: int | None = None

    def holder(self) -> dict[str, Any]:
        try:
            return json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return {}

    def acquire(self, wait_for_orphans: float = ORPHAN_WAIT_SECONDS) -> ExperimentLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline, told = time.monotonic() + wait_for_orphans, False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = self.holder()
                pid, host = int(holder.get("pid") or 0), holder.get("host")
                if (pid and host == platform.node() and pid_alive(pid)) or time.monotonic() > deadline:
                    os.close(fd)
                    raise VersioningError(self.refusal(holder)) from None
                if not told:  # its holder died; a git/DVC child it started is finishing
                    print(f"waiting for the git/DVC step a killed experiment (PID {pid}) left running...")
                    told = True
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        info = {"pid": os.getpid(), "host": platform.node(), "command": " ".join(sys.argv), "started": _now()}
        os.write(fd, json.dumps(info).encode())
        self.fd = fd
        HELD_LOCKS.append(fd)
        return self

    def refusal(self, holder: dict[str, Any]) -> str:
        return (
            f"another experiment is running in this project: PID {holder.get('pid', '?')} on "
            f"{holder.get('host', '?')}, `{holder.get('command', '?')}`, started {holder.get('started', '?')}.\n"
            "  One experiment at a time: wait for it to finish (or stop it), then run `make experiment` again."
        )

    def release(self) -> None:
        if self.fd is None:
            return
        HELD_LOCKS.remove(self.fd)
        os.ftruncate(self.fd, 0)
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = None


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


# -- the journal: where an interrupted experiment stands ------------------------------------------
# The steps after the run, in order. Each is idempotent and checks the repository, not only the
# journal, so a kill between a step and its journal entry is harmless.
PHASES = ("claimed", "ran", "tagged", "pushed")


@dataclass
class Journal:
    """The experiment in progress: its version, where the user was, and the last finished phase."""

    version: str
    commit: str  # HEAD when it started (the code it runs)
    previous_branch: str  # where the user was (restored at the end)
    branch: str = ""  # maximum: experiment/<name>
    phase: str = "claimed"
    dirty: bool = False
    message: str = ""
    data: list = field(default_factory=list)  # the data fingerprint at the start
    started: str = field(default_factory=_now)

    @staticmethod
    def path(cfg: BenchConfig) -> Path:
        return state_dir(cfg) / "bench-experiment.json"

    @classmethod
    def load(cls, cfg: BenchConfig) -> Journal | None:
        try:
            return cls(**json.loads(cls.path(cfg).read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def save(self, cfg: BenchConfig, phase: str | None = None) -> None:
        """Written whole to a temporary file, then renamed: a kill leaves the old or the new journal."""
        self.phase = phase or self.phase
        path = self.path(cfg)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(asdict(self)))
        os.replace(tmp, path)

    def past(self, phase: str) -> bool:
        return PHASES.index(self.phase) >= PHASES.index(phase)

    @classmethod
    def clear(cls, cfg: BenchConfig) -> None:
        cls.path(cfg).unlink(missing_ok=True)


def head(cfg: BenchConfig) -> str:
    return git(cfg.root, "rev-parse", "HEAD").stdout.strip()


def tag_exists(cfg: BenchConfig, version: str) -> bool:
    return git(cfg.root, "rev-parse", "--verify", "--quiet", f"refs/tags/{version}", check=False).returncode == 0


def resumable(cfg: BenchConfig, journal: Journal) -> bool:
    """Whether the repository is where the interrupted experiment left it (so completing it is right)."""
    if tag_exists(cfg, journal.version):
        return True  # only the push and the branch switch remain
    current = head(cfg)
    if current == journal.commit:
        return True
    parent = git(cfg.root, "rev-parse", "--verify", "--quiet", "HEAD^", check=False).stdout.strip()
    subject = git(cfg.root, "log", "-1", "--format=%s").stdout.strip()
    return parent == journal.commit and subject == results_subject(journal.version)


def results_subject(version: str) -> str:
    return f"experiment: {version} results"


def claim_version(cfg: BenchConfig, abandoned: Journal | None) -> str:
    """The next e0.0.N after every tag and any abandoned experiment (whose rows stay in the database)."""
    version = env.next_experiment_version(cfg.root)
    if abandoned and version_key(abandoned.version) >= version_key(version):
        major, minor, patch = version_key(abandoned.version)
        version = f"e{major}.{minor}.{patch + 1}"
    return version


# -- recording an experiment --------------------------------------------------------------------
def data_fingerprint(cfg: BenchConfig) -> list[list]:
    """[path, size, mtime] of every data file: a change during a run makes its results unreliable."""
    folder = data_folder(cfg)
    if not folder.is_dir():
        return []
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return [[str(p), p.stat().st_size, p.stat().st_mtime_ns] for p in files]


def clean_dvc_tmp(cfg: BenchConfig, before: float) -> list[str]:
    """Delete the `.tmp` files a killed DVC left in .dvc/cache (called under the lock: no DVC of ours runs)."""
    cache = cfg.root / ".dvc" / "cache"
    removed = []
    if cache.is_dir():
        for path in cache.rglob("*.tmp"):
            if path.is_file() and path.stat().st_mtime < before:
                path.unlink(missing_ok=True)
                removed.append(path.name)
    return removed


def release_killed_dvc_locks(cfg: BenchConfig) -> list[int]:
    """Remove the entries of DVC's rwlock whose process is gone or a zombie; return their PIDs.

    DVC drops the entries of processes that no longer exist itself, but a SIGKILLed `dvc add` whose
    parent (the killed experiment) died too stays a zombie until PID 1 reaps it, and DVC counts a
    zombie as running: the resumed experiment's `dvc add` failed with "is busy ... remove rwlock by
    hand". Called under the experiment lock (no DVC of ours runs: an orphan would hold that lock);
    a live process's entry, a user's own `dvc` command, is kept.
    """
    import psutil

    path = cfg.root / ".dvc" / "tmp" / "rwlock"
    try:
        lock = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []

    def gone(info: dict[str, Any]) -> bool:
        try:
            return psutil.Process(int(info["pid"])).status() == psutil.STATUS_ZOMBIE
        except psutil.AccessDenied:  # another user's live process: it exists
            return False
        except (psutil.NoSuchProcess, KeyError, TypeError, ValueError):  # ZombieProcess is a NoSuchProcess
            return True

    released: set[int] = set()
    for mode, entries in lock.items():
        for target, infos in list(entries.items()):
            listed = infos if isinstance(infos, list) else [infos]
            kept = [info for info in listed if not gone(info)]
            released.update(int(info.get("pid", 0)) for info in listed if info not in kept)
            if not kept:
                del entries[target]
            elif mode == "read":
                entries[target] = kept
    if released:
        temporary = path.with_name(path.name + ".bench-tmp")
        temporary.write_text(json.dumps(lock), encoding="utf-8")
        os.replace(temporary, path)
    return sorted(released)


DISK_FULL = ("No space left on device", "[Errno 28]", "Disk quota exceeded", "[Errno 122]")


def failure_cause(step: str, output: str) -> str | None:
    """The real cause of a failed DVC step in one line with its fix, when it is one the user can repair.

    DVC is run without --quiet (which hides its error lines): its output is captured and read here.
    """
    if any(marker in output for marker in DISK_FULL):
        where = "the DVC remote" if step == "push" else "the project's disk (.dvc/cache)"
        return (
            f"`dvc {step}`: no space left on {where}. Free some space (df -h .), then re-run `make experiment`: "
            "it completes the experiment without recomputing"
        )
    return None


def dvc_step(cfg: BenchConfig, step: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """A DVC call that a crash test can interrupt while it runs (BENCH_FAULT=during:<step> / kill:<step>)."""
    fault = os.environ.get("BENCH_FAULT", "")
    if fault not in (f"during:{step}", f"kill:{step}"):
        done = dvc(cfg.root, *args, check=False)
        if check and done.returncode != 0:
            output = (done.stdout + done.stderr).strip()
            raise VersioningError(failure_cause(args[0], output) or f"`dvc {' '.join(args)}` failed:\n{output}")
        return done
    child = subprocess.Popen(
        [dvc_executable(), *args], cwd=cfg.root, env=tool_env(), stdin=subprocess.DEVNULL, pass_fds=tuple(HELD_LOCKS)
    )
    time.sleep(0.5)
    if fault.startswith("kill:"):
        child.send_signal(signal.SIGKILL)  # the step itself dies (a `.tmp` may stay in the cache)
    os.kill(os.getpid(), signal.SIGKILL)  # during: the step goes on as an orphan
    raise AssertionError("unreachable")


# -- per-version results files ----------------------------------------------------------------------
REBUILD_COMMAND = "uv run bench rebuild-db"


def results_folder(cfg: BenchConfig, root: Path | None = None) -> Path:
    """results/ beside the working database: one file per experiment version."""
    return (root or cfg.root) / Path(relative(cfg, cfg.db_path)).parent / versionfiles.RESULTS_FOLDER


def results_path(cfg: BenchConfig, version: str) -> str:
    """`results/<version>.db.dvc` relative to the project, as git names it."""
    return relative(cfg, versionfiles.version_file(results_folder(cfg), version)) + ".dvc"


def at_tag(cfg: BenchConfig, rev: str, path: str) -> bool:
    """Whether `path` is committed at `rev`."""
    return git(cfg.root, "cat-file", "-e", f"{rev}:{path}", check=False).returncode == 0


def tracked_results(folder: Path) -> list[Path]:
    """The version files whose .dvc file is in `folder` (in a checkout: exactly the versions up to it)."""
    return [path.with_suffix("") for path in folder.glob(f"*{versionfiles.SUFFIX}.dvc")]


def results_to_record(cfg: BenchConfig, version: str) -> tuple[list[str], list[str]]:
    """(versions to export, versions whose .dvc comes from their own tag) for the results commit of `version`.

    Every tagged version in the working database must have its file here, so a tag's checkout lists
    exactly its versions: an experiment recorded on another branch (maximum versioning) brings its .dvc
    file from its tag (nothing stored again); a version tagged before this layout (benchmark.db.dvc) or
    without DVC is exported once from the working database, by the first experiment that needs it.
    """
    held = recorded_versions(cfg)
    exported, copied = [version], []
    for tag in env.experiment_tags(cfg.root):
        if tag == version or tag not in held or (cfg.root / results_path(cfg, tag)).exists():
            continue
        (copied if at_tag(cfg, tag, results_path(cfg, tag)) else exported).append(tag)
    return exported, copied


def export(cfg: BenchConfig, path: Path) -> None:
    """One version's rows to its file; a full disk is named with its fix (the export is redone on resume)."""
    try:
        versionfiles.export_version(cfg.db_path, versionfiles.file_version(path), path)
    except (sqlite3.Error, OSError) as error:
        versionfiles.temporary_file(path).unlink(missing_ok=True)
        full = "disk is full" in str(error) or any(marker in str(error) for marker in DISK_FULL)
        raise VersioningError(
            f"exporting {path.name}: no space left on the project's disk. Free some space (df -h .), then re-run "
            "`make experiment`: it completes the experiment without recomputing"
            if full
            else f"exporting {path.name} from {cfg.db_path.name} failed: {error}"
        ) from error


def commit_results(cfg: BenchConfig, version: str) -> list[str]:
    """Export the version's rows to results/<version>.db, `dvc add` it and commit its .dvc file.

    Idempotent (a resumed experiment calls it again): a file whose .dvc exists was added whole and is
    kept; one without is exported again (the export is atomic, a kill leaves no partial file).
    """
    if refused := symlinked_database(cfg):
        raise VersioningError("\n".join(refused))
    folder = results_folder(cfg)
    exported, copied = results_to_record(cfg, version)
    for tag in copied:
        (cfg.root / results_path(cfg, tag)).write_text(git(cfg.root, "show", f"{tag}:{results_path(cfg, tag)}").stdout)
    files = [versionfiles.version_file(folder, v) for v in exported]
    for path in files:
        if not (path.exists() and path.with_name(path.name + ".dvc").exists()):
            export(cfg, path)
    env.fault_point("export")
    clean_dvc_tmp(cfg, time.time())
    release_killed_dvc_locks(cfg)
    dvc_step(cfg, "dvc-add", "add", *(relative(cfg, path) for path in files))
    env.fault_point("dvc-add")
    added = [relative(cfg, path) + ".dvc" for path in files] + [results_path(cfg, tag) for tag in copied]
    tracked = [p for p in (*added, relative(cfg, folder / ".gitignore"), ".gitignore") if (cfg.root / p).exists()]
    git(cfg.root, "add", "--", *tracked)
    legacy = f"{relative(cfg, cfg.db_path)}.dvc"
    if at_tag(cfg, "HEAD", legacy):  # the whole-database layout ends here (its tags keep their file)
        git(cfg.root, "rm", "--cached", "--quiet", "--ignore-unmatch", legacy)
        (cfg.root / legacy).unlink(missing_ok=True)
        tracked.append(legacy)
    if not git(cfg.root, "diff", "--cached", "--name-only", "HEAD", "--", *tracked).stdout.strip():
        return [f"results: {added[0]} already committed"]
    git(cfg.root, "commit", "--quiet", "--no-verify", "-m", results_subject(version), "--", *tracked)
    env.fault_point("commit")
    lines = [f"results committed: {added[0]} ({env.code_commit(cfg.root)})"]
    if len(exported) > 1:
        lines.append(f"results of earlier experiments now in {relative(cfg, folder)}/ too: {', '.join(exported[1:])}")
    return lines


def tag_results(cfg: BenchConfig, tag: str) -> dict[str, str]:
    """{version: its .dvc text} of the results files committed at `tag` (every version up to it)."""
    folder = relative(cfg, results_folder(cfg)) + "/"
    listed = git(cfg.root, "ls-tree", "-r", "--name-only", tag, "--", folder).stdout.split()
    suffix = versionfiles.SUFFIX + ".dvc"
    return {
        name[len(folder) : -len(suffix)]: git(cfg.root, "show", f"{tag}:{name}").stdout
        for name in listed
        if name.endswith(suffix) and "/" not in name[len(folder) :]
    }


def file_md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def local_version_file(cfg: BenchConfig, version: str, pointer: str) -> tuple[Path, str] | None:
    """A version file's content as its pointer records it, when this machine has it: (path, where from).

    The file in results/ when its md5 matches, else DVC's cache object; None when neither has it.
    """
    match = re.search(r"md5:\s*([0-9a-f]{32})", pointer)
    if not match:
        return None
    path = versionfiles.version_file(results_folder(cfg), version)
    if path.is_file() and file_md5(path) == match[1]:
        return path, "results/"
    if (cached := cfg.root / ".dvc" / "cache" / "files" / "md5" / match[1][:2] / match[1][2:]).is_file():
        return cached, "DVC cache"
    return None


def restore_version_file(cfg: BenchConfig, tag: str, version: str, pointer: str) -> tuple[Path, str]:
    """A version file's content as `tag` recorded it: (path, where from). Never writes a .dvc file here.

    The file in results/ when it matches, else DVC's cache object, else `dvc get` from this repository
    at the tag (the cache or the remote): a checkout whose results/ lacks that version (maximum
    versioning records on experiment branches) is rebuilt all the same.
    """
    if found := local_version_file(cfg, version, pointer):
        return found
    path = versionfiles.version_file(results_folder(cfg), version)
    path.parent.mkdir(exist_ok=True)
    name = relative(cfg, path)
    dvc(cfg.root, "get", ".", name, "--rev", tag, "--out", name, "--force")
    return path, "DVC remote"


def fetch_missing_version_files(cfg: BenchConfig, sources: dict[str, tuple[str, str]]) -> set[str]:
    """One `dvc fetch` of every tag's and branch's files when some version file is on no local disk.

    A fresh clone of a benchmark with fifty experiments would otherwise start fifty `dvc get`s (about
    a second each); one fetch downloads them together into the DVC cache. Whatever it cannot fetch
    falls back to `dvc get` per file (restore_version_file). Returns the versions that were missing.
    """
    missing = {version for version, (_, pointer) in sources.items() if not local_version_file(cfg, version, pointer)}
    if missing:
        dvc(cfg.root, "fetch", "--quiet", "--all-tags", "--all-branches", check=False)
    return missing


def discard_unrecorded_results(cfg: BenchConfig, version: str) -> list[str]:
    """An abandoned experiment's results file and pointer, when git does not track them: deleted.

    Its export (after:export) or `dvc add` (after:dvc-add) left results/<version>.db and maybe its
    .dvc; the version is never tagged, so they would stay as stray files (an untracked .dvc a later
    `git add -A` would commit for a version no tag has). Its rows stay in the working database. Called
    under the experiment lock; a pointer git tracks (committed before HEAD moved) is kept with its file.
    The DVC cache object stays until `dvc gc`.
    """
    if not uses_dvc(cfg):
        return []
    path = versionfiles.version_file(results_folder(cfg), version)
    pointer = relative(cfg, path) + ".dvc"
    if git(cfg.root, "ls-files", "--error-unmatch", "--", pointer, check=False).returncode == 0:
        return []
    removed = [p for p in (path, path.with_name(path.name + ".dvc")) if p.exists()]
    for stray in (*removed, versionfiles.temporary_file(path)):
        stray.unlink(missing_ok=True)
    ignore = path.parent / ".gitignore"  # `dvc add` lists the file there when no other rule ignores it
    if ignore.is_file() and f"/{path.name}" in (entries := ignore.read_text().splitlines()):
        kept = [e for e in entries if e != f"/{path.name}"]
        if kept or at_tag(cfg, "HEAD", relative(cfg, ignore)):
            ignore.write_text("".join(f"{e}\n" for e in kept))
        else:
            ignore.unlink()
    if not removed:
        return []
    return [f"note: removed {version}'s unrecorded results file ({', '.join(relative(cfg, p) for p in removed)})"]


def rescored_results(cfg: BenchConfig, db_path: Path, version: str) -> list[str]:
    """After `make rescore` of a tagged version: its results file exported again and `dvc add`-ed.

    The version file is what a rebuild (fresh clone, `make reproduce`, `rebuild-db`) restores: without
    this, the rescore would live in the working database only and a rebuild would silently drop it.
    The old tag keeps its pointer (its results as tagged); committing the new pointer makes the next
    commit and tag carry the rescored file. DVC stores one more copy of that version's rows, no more.
    Untagged versions (an experiment still to be recorded exports them then), another database (--db,
    --dev) and minimal versioning are left alone. Call it under the experiment lock.
    """
    if not uses_dvc(cfg) or db_path.resolve() != cfg.db_path.resolve() or not tag_exists(cfg, version):
        return []
    path = versionfiles.version_file(results_folder(cfg), version)
    export(cfg, path)
    dvc(cfg.root, "add", "--quiet", relative(cfg, path))
    pointer = relative(cfg, path) + ".dvc"
    if not rescored_uncommitted(cfg):
        return [f"{pointer}: unchanged"]
    return [
        f"{relative(cfg, path)} exported again with the rescore and `dvc add`-ed ({version}'s tag keeps the file "
        "as it was tagged); until it is committed, a rebuild of the database would not have the rescore.",
        f"  commit it: {rescore_commit_command(pointer, version)}",
    ]


def rebuild_sources(cfg: BenchConfig, latest: str) -> dict[str, tuple[str, str]]:
    """{version: (rev, pointer)} to rebuild from: the latest tag's, with pointers committed since (rescores).

    HEAD's pointer of a version wins unless HEAD is an older commit than the tag (a checkout of the
    past keeps the tag's newer files); only the tag's versions are rebuilt.
    """
    sources = {version: (latest, pointer) for version, pointer in tag_results(cfg, latest).items()}
    tagged = git(cfg.root, "rev-parse", f"{latest}^{{commit}}").stdout.strip()
    ancestor = git(cfg.root, "merge-base", "--is-ancestor", "HEAD", latest, check=False).returncode == 0
    if head(cfg) == tagged or not ancestor:
        changed = {v: p for v, p in tag_results(cfg, "HEAD").items() if v in sources and p != sources[v][1]}
        sources.update({version: ("HEAD", pointer) for version, pointer in changed.items()})
    return sources


def rebuild_database(cfg: BenchConfig) -> list[str]:
    """The working database rebuilt from the version files of the latest experiment tag.

    An existing database is kept beside as <name>.before-rebuild.db, never deleted.
    """
    tags = env.experiment_tags(cfg.root)
    latest = next((t for t in reversed(tags) if at_tag(cfg, t, results_path(cfg, t))), None)
    if latest is None:
        raise VersioningError("no experiment tag has results/<version>.db files yet: nothing to rebuild from")
    wanted = rebuild_sources(cfg, latest)
    fetched = fetch_missing_version_files(cfg, wanted)
    sources, origins = {}, set()
    for version, (rev, pointer) in wanted.items():
        sources[version], origin = restore_version_file(cfg, rev, version, pointer)
        origins.add("DVC remote, one `dvc fetch`" if version in fetched and origin == "DVC cache" else origin)
    db = cfg.db_path
    lines = []
    if db.exists():
        kept = db.with_name(f"{db.stem}.before-rebuild{db.suffix}")
        os.replace(db, kept)
        lines.append(f"the previous {db.name} is kept as {kept.name}")
    counts = versionfiles.rebuild(sources, db, order=version_key)
    rows = ", ".join(f"{table} {n}" for table, n in counts.items())
    versions = sorted(sources, key=version_key)
    where = ", ".join(sorted(origins))
    head = f"{db.name} rebuilt from the {len(versions)} version files of {latest} ({where}): "
    return [head + f"{versions[0]}..{versions[-1]}; rows: {rows}", *lines]


def rebuild_if_missing(cfg: BenchConfig) -> list[str]:
    """A fresh clone (or a deleted database): the working database comes back from the version files.

    Called by `make experiment` and by the commands that read the experiment database (report, sql,
    validate, export, rescore): a clone's first `make report TAG=...` needs no manual `rebuild-db`.
    """
    if uses_dvc(cfg) and not cfg.db_path.exists() and (tags := env.experiment_tags(cfg.root)):
        if at_tag(cfg, tags[-1], results_path(cfg, tags[-1])):
            return rebuild_database(cfg)
    return []


def record(cfg: BenchConfig, version: str, message: str) -> list[str]:
    """Results commit (standard/maximum) and the annotated tag; idempotent (a resumed run calls it again)."""
    lines = commit_results(cfg, version) if uses_dvc(cfg) else []
    if not tag_exists(cfg, version):
        git(cfg.root, "tag", "-a", version, "-m", message)
        env.fault_point("tag")
    lines.append(f"tagged {version}: {message}")
    return lines


def unpushed(cfg: BenchConfig) -> bool:
    """Whether any experiment tag (or the workspace) has data or results the DVC remote lacks."""
    done = dvc(cfg.root, "status", "--cloud", "--all-tags", "--quiet", check=False)
    return done.returncode != 0


def push_all(cfg: BenchConfig) -> list[str]:
    """`dvc push` of the workspace and every tag (an earlier push may have been killed), then verified."""
    pushed = dvc_step(cfg, "push", "push", "--all-tags", check=False)
    env.fault_point("push")
    if pushed.returncode == 0 and not unpushed(cfg):
        return [f"pushed data and results of every experiment to the DVC remote ({cfg.dvc_remote})"]
    output = (pushed.stdout + pushed.stderr).strip()
    detail = failure_cause("push", output) or output[-800:]
    return [f"WARNING: the DVC remote lacks some experiments' data; `make push` retries:\n{detail}"]


def mark_dirty(cfg: BenchConfig, version: str) -> None:
    """git_dirty = 1 on every row of `version` in both tables (a run allowed to start dirty)."""
    with sqlite3.connect(cfg.db_path) as con:
        for table in (cfg.predictions_table, cfg.metrics_table):
            if "git_dirty" in column_names(con, table):
                con.execute(f"UPDATE {quote(table)} SET git_dirty = 1 WHERE experiment_version = ?", (version,))
    con.close()


def switch_to(cfg: BenchConfig, branch: str, start: str) -> None:
    """Maximum rigour: onto `branch` (created at `start` the first time; kept when resuming)."""
    if env.git_branch(cfg.root) == branch:
        return
    exists = git(cfg.root, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}", check=False).returncode == 0
    git(cfg.root, "switch", "--quiet", branch) if exists else git(cfg.root, "switch", "--quiet", "-c", branch, start)


def unchanged_since(cfg: BenchConfig) -> str | None:
    """The last experiment when this one would repeat it: same code, data and parameters, all cached.

    Same commit contents (results files aside), a clean tree, and exactly the cache keys (code version,
    configuration, input content) the last experiment recorded without error.
    """
    tags = env.experiment_tags(cfg.root)
    last = last_experiment(cfg)
    if not tags or last is None or last[0] != tags[-1] or uncommitted(cfg):
        return None
    version, commit = last
    if git(cfg.root, "diff", "--quiet", commit, "HEAD", "--", ".", *NOT_CODE, check=False).returncode != 0:
        return None
    from .._run import runner

    return version if runner.recorded_as_planned(cfg, version) else None


def run_experiment(
    cfg: BenchConfig, options: ExperimentOptions, execute: Callable[[str], tuple[int, list[dict[str, Any]]]]
) -> int:
    """Validate, run (`execute(version)` -> (exit code, metrics rows)), record. Exit code 2: refused.

    One at a time (ExperimentLock). Every step after the run is journaled and idempotent: after a
    crash at any point, `make experiment` completes the same experiment (same version, rows not dirty).
    """
    try:
        lock = ExperimentLock(cfg).acquire()
    except VersioningError as error:
        print(f"experiment refused: {error}", file=sys.stderr)
        return 2
    try:
        return _run_locked(cfg, options, execute)
    finally:
        lock.release()


def _start(cfg: BenchConfig, options: ExperimentOptions) -> Journal | int:
    """The journal of the experiment to (re)start, or an exit code when there is nothing to run."""
    journal = Journal.load(cfg)
    abandoned = None
    if journal is not None and not resumable(cfg, journal):
        print(
            f"note: {journal.version} was interrupted after `{journal.phase}` on commit {journal.commit[:12]} and "
            "HEAD has moved since: its rows stay in the database, untagged; this is a new experiment"
        )
        for line in discard_unrecorded_results(cfg, journal.version):
            print(line)
        Journal.clear(cfg)
        abandoned, journal = journal, None
    if journal is not None:
        print(f"resuming {journal.version}: interrupted after `{journal.phase}`")
        if not options.message:
            options.message = journal.message
        return journal if run_preflight(cfg, options) else 2
    try:
        if rebuilt := rebuild_if_missing(cfg):
            print("\n".join(rebuilt))
    except VersioningError as error:
        print(f"experiment refused: {error}", file=sys.stderr)
        return 2
    if not run_preflight(cfg, options):
        return 2
    if options.check_unchanged and not options.force_tag and (same := unchanged_since(cfg)):
        print(
            f"nothing changed since {same} (same code, data and parameters; every result cached): "
            f"no new experiment recorded. `make experiment ARGS=--force-tag` records one anyway."
        )
        return 0
    version = claim_version(cfg, abandoned)
    branch = f"experiment/{options.name or version}" if cfg.versioning == "maximum" else ""
    journal = Journal(
        version=version,
        commit=head(cfg),
        previous_branch=env.git_branch(cfg.root),
        branch=branch,
        dirty=options.allow_dirty and bool(uncommitted(cfg)),
        data=data_fingerprint(cfg),
    )
    journal.save(cfg)
    return journal


def _run_locked(
    cfg: BenchConfig, options: ExperimentOptions, execute: Callable[[str], tuple[int, list[dict[str, Any]]]]
) -> int:
    started = _start(cfg, options)
    if isinstance(started, int):
        return started
    journal, version = started, started.version
    finished = False
    try:
        if journal.branch and not tag_exists(cfg, version):
            switch_to(cfg, journal.branch, journal.commit)
            env.fault_point("branch")
        if not journal.past("ran"):
            code, rows = execute(version)
            if code != 0:
                return code
            if data_fingerprint(cfg) != journal.data:
                print(f"data/ changed during the run: {version} is not tagged; restore it and re-run", file=sys.stderr)
                return 2
            if journal.dirty:  # git_dirty comes from git alone; data changed under DVC is dirty too
                mark_dirty(cfg, version)
            data = env.data_commit(cfg.root, cfg.data_path)
            journal.message = options.message or tag_message(rows, headline_metrics(cfg), data, journal.dirty)
            journal.save(cfg, "ran")
        if not tag_exists(cfg, version):  # else: recorded before a crash (maybe back on the user's branch)
            print("\n".join(record(cfg, version, journal.message)))
        journal.save(cfg, "tagged")
        if uses_dvc(cfg) and options.push and not journal.past("pushed"):
            print("\n".join(push_all(cfg)))
            journal.save(cfg, "pushed")
        if journal.previous_branch and env.git_branch(cfg.root) != journal.previous_branch:
            git(cfg.root, "switch", "--quiet", journal.previous_branch)
            env.fault_point("switch-back")
            print(f"{version} ran on branch {journal.branch}; back on {journal.previous_branch}")
        Journal.clear(cfg)
        finished = True
    except VersioningError as error:
        print(f"{version}: {error}\n  `make experiment` completes it once that is fixed", file=sys.stderr)
        return 1
    finally:
        if not finished and journal.previous_branch and env.git_branch(cfg.root) != journal.previous_branch:
            git(cfg.root, "switch", "--quiet", journal.previous_branch, check=False)  # back where the user was
    print(f"reproduce it later with: make reproduce TAG={version}")
    return 0


# -- listing and reproducing --------------------------------------------------------------------
def list_experiments(cfg: BenchConfig) -> str:
    """The experiment tags with their messages, oldest first (sorted as versions: e0.0.10 > e0.0.9)."""
    listed = git(cfg.root, "tag", "-l", "e*", "-n9", "--sort=version:refname", check=False).stdout.rstrip()
    return listed or "no experiments yet: run `make experiment`"


REPRODUCTIONS = "reproductions"


def local_remotes(cfg: BenchConfig) -> dict[str, str]:
    """DVC remotes that are folders, as absolute paths (a relative one means another thing in a worktree)."""
    listed = dvc(cfg.root, "config", "--list", check=False).stdout
    remotes = {}
    for line in listed.splitlines():  # remote.<name>.url=<url as written, relative to .dvc/>
        key, _, url = line.partition("=")
        if key.startswith("remote.") and key.endswith(".url") and url and "://" not in url:
            remotes[key[len("remote.") : -len(".url")]] = str((cfg.root / ".dvc" / url.strip()).resolve())
    return remotes


def reproduce(cfg: BenchConfig, tag: str) -> list[str]:
    """Restore `tag` into reproductions/<tag>/ (a git worktree at the tag, its own data and database).

    The working tree, its branch and its database are never touched: coming back needs nothing, and
    the next experiment still appends to the database that holds every version.
    """
    if tag not in env.experiment_tags(cfg.root):
        known = ", ".join(env.experiment_tags(cfg.root)) or "none yet"
        raise VersioningError(f"no experiment tag {tag!r} (experiments: {known})")
    folder = cfg.root / REPRODUCTIONS / tag
    where = f"{REPRODUCTIONS}/{tag}"
    lines = []
    if not (folder / ".git").exists():
        folder.parent.mkdir(exist_ok=True)
        git(cfg.root, "worktree", "add", "--quiet", "--detach", str(folder), tag)
        lines.append(f"{where}/: a git worktree at {tag}")
    else:
        lines.append(f"{where}/ exists: restoring its data and database again")
    if not uses_dvc(cfg):
        lines.append(
            f"versioning is minimal: the database is not versioned; in {where}/ "
            f"`uv run bench run --experiment-version {tag}` recomputes it (cached rows are reused)"
        )
    else:
        lines.append(restore_in(cfg, folder, tag))
    here = env.git_branch(cfg.root) or "HEAD"
    lines.append(f"your working tree and {relative(cfg, cfg.db_path)} are untouched (still on {here})")
    lines.append(f"look at it: cd {where} ; remove it: git worktree remove --force {where}")
    return lines


def restore_in(cfg: BenchConfig, folder: Path, tag: str) -> str:
    """DVC checkout in the worktree, sharing this project's cache (else pull from the remote).

    A tag of the per-version layout gets its working database rebuilt from its results/*.db files
    (exactly the versions up to it); an older tag (benchmark.db.dvc) gets its whole database back.
    """
    dvc(folder, "cache", "dir", "--local", str((cfg.root / ".dvc" / "cache").resolve()))
    for name, url in local_remotes(cfg).items():
        dvc(folder, "remote", "modify", "--local", name, "url", url)
    db = relative(cfg, cfg.db_path)
    versions = tracked_results(results_folder(cfg, folder))
    results = [str(path.relative_to(folder)) + ".dvc" for path in versions]
    targets = [p for p in ("data.dvc", f"{db}.dvc") if (folder / p).exists()] + results
    if dvc(folder, "checkout", "--quiet", "--force", *targets, check=False).returncode == 0:
        how = "restored {} from the DVC cache into {}/{}/"
    else:
        dvc(folder, "pull", "--force", *targets)
        how = "pulled {} from the DVC remote into {}/{}/"
    named = [p for p in targets if p not in results] + ([f"{len(results)} results/*.db.dvc"] if results else [])
    line = how.format(", ".join(named), REPRODUCTIONS, tag)
    if versions:
        counts = versionfiles.rebuild(versions, folder / db, order=version_key)
        line += f"; {db} rebuilt from them (" + ", ".join(f"{t} {n}" for t, n in counts.items()) + " rows)"
    return line


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
    """`dvc push`: data and every tagged database version to the remote, verified with `dvc status -c`."""
    if not uses_dvc(cfg):
        return "versioning is minimal: nothing to push with DVC (push your git tags with `git push --tags`)"
    dvc(cfg.root, "push", "--quiet", "--all-tags")
    if unpushed(cfg):
        raise VersioningError("`dvc push` ran but `dvc status --cloud --all-tags` still lists missing files")
    return f"pushed data and every experiment's results to the DVC remote ({cfg.dvc_remote})"


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
