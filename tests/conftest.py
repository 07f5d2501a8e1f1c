"""Fixtures for the template tests: render answer sets with copier's API, run what they generate.

Rendering plus `uv sync` costs ~15 s, so each answer set is rendered ONCE per test session, shared
by every test and every xdist worker (a cache folder beside the workers' temporary folders, one
FileLock per answer set). Tests that change a project get their own copy (`rendered`: a copy per
worker and name, its .venv hard-linked and re-pointed, well under a second); tests that only read
files use the shared render itself (`rendered_static`).
"""

from __future__ import annotations

import atexit
import compileall
import hashlib
import importlib.util
import json
import os
import py_compile
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from copier import run_copy
from filelock import FileLock
from hypothesis import settings as hypothesis_settings
from plumbum import local as plumbum_local

# Property tests draw the same examples on every run (CI must not turn red on a new random draw);
# HYPOTHESIS_PROFILE=explore draws fresh ones when hunting for bugs.
hypothesis_settings.register_profile("ci", derandomize=True, deadline=None, database=None)
hypothesis_settings.register_profile("explore", deadline=None)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

TEMPLATE = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
# tests/bin/uv: `uv lock` and `uv sync` resolve from uv's cache first (online only when it lacks
# something). First on the PATH of the projects' commands and of copier's tasks run in-process.
UV_FROM_CACHE_BIN = Path(__file__).resolve().parent / "bin"
# The generated projects' temporary files (their own pytest's tmp_path, uv's locks, copier's clones in
# `make update`) go to a folder of their own, shared by every test process (uv locks an environment with
# a file there). A project's pytest would otherwise prune the oldest numbered folders of
# /tmp/pytest-of-<user>, which may be an earlier session's with all its renders: 20-30 s of deleting,
# inside whichever test ran `make test` first. In this folder it prunes only its own small ones.
PROJECT_TMP = Path(tempfile.gettempdir()) / "copier-benchmark-projects"
PROJECT_TMP.mkdir(exist_ok=True)

# Bytecode. Without .pyc files every Python process compiles what it imports from source: 2-6 s for
# copier, scipy or sklearn, dvc, ... and a test session starts hundreds of them (each `make` in a
# generated project runs `uv run bench`, which runs dvc, ...). So, whatever PYTHONDONTWRITEBYTECODE says:
# - this process and the xdist workers READ bytecode from
#   PYCACHE (outside the repository and the maybe shared .venv) but never write it while tests run:
#   tests rewrite a toy's predict.py and import it again within the same second, and a .pyc is
#   checked against its source's mtime in whole seconds (and its size). At the end of a session
#   each process compiles the library and template modules it imported into PYCACHE
#   (pytest_sessionfinish): the next session starts warm.
# - generated projects write theirs in their own tree (__pycache__, git-ignored): project_env() and
#   copier's tasks (plumbum's copy of the environment, made when copier was imported) drop both
#   variables, so a copy of a shared render (copy_project) finds the .pyc files the render's own
#   tasks and warm_bytecode() wrote. (Their files are edited seconds after they were written.)
PYCACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "copier-benchmark-tests" / "pycache"
sys.pycache_prefix = str(PYCACHE)
sys.dont_write_bytecode = True
for _name in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX"):
    plumbum_local.env.pop(_name, None)
for _env in (os.environ, plumbum_local.env):
    _env["PATH"] = os.pathsep.join([str(UV_FROM_CACHE_BIN), str(VENV_BIN), _env.get("PATH", "")])
# (Not for the template's Python run as a subprocess: with the prefix, the SIGINT cases of
# test_executors' hung-run test timed out twice under -n 2; they compile what they import, as before.)
os.environ["PYTHONDONTWRITEBYTECODE"] = "1"


def pytest_sessionstart(session: pytest.Session) -> None:
    """A fresh clone (CI) has no bytecode for its paths: without it every toy test compiled the whole
    harness again (the fast tier took 95 s instead of 63 s)."""
    compile_into_pycache()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """What the tests imported, for the next session."""
    compile_into_pycache()


def compile_into_pycache() -> None:
    """Compile into PYCACHE the template's harness and what this process imported from the .venv (not
    the tests' own files). The toy fixture imports the harness afresh for each test: from bytecode now."""
    compileall.compile_dir(TEMPLATE / "template" / "src", quiet=2)
    roots = (str(Path(sys.prefix).resolve()) + os.sep,)
    for module in list(sys.modules.values()):
        source = getattr(module, "__file__", None) or ""
        if not source.endswith(".py") or not os.path.realpath(source).startswith(roots):
            continue
        try:
            cached = importlib.util.cache_from_source(source)
            if not os.path.exists(cached) or os.path.getmtime(cached) < os.path.getmtime(source):
                py_compile.compile(source, cfile=cached, doraise=True)
        except (OSError, py_compile.PyCompileError, ValueError):
            continue


def project_env(**extra: str) -> dict[str, str]:
    """The environment a generated project runs in: our uv on PATH (set at import), no prompts, DVC offline,
    its temporary files in PROJECT_TMP."""
    skip = ("VIRTUAL_ENV", "BENCH_", "PYTEST_", "PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")
    env = {k: v for k, v in os.environ.items() if not k.startswith(skip)}
    env.update(DVC_NO_ANALYTICS="1", GIT_TERMINAL_PROMPT="0", UV_NO_PROGRESS="1", TMPDIR=str(PROJECT_TMP), **extra)
    return env


def render(
    destination: Path,
    answers: dict[str, Any] | None = None,
    *,
    tasks: bool = True,
    vcs_ref: str = "HEAD",
    pretend: bool = False,
    from_snapshot: bool = False,
) -> Path:
    """Render the working tree of this template (uncommitted changes included) into `destination`.

    `pretend` asks the questions and validates the answers but writes nothing: from this process's
    snapshot of the working tree (a plain folder copier reads in place, ~0.4 s) rather than a clone
    of the repository (~0.66 s), when it would be the working tree at HEAD anyway. `from_snapshot`
    renders from it too (0.26 s less), for files only: the answers file then names the snapshot
    and no commit, so `copier update` cannot start from the project.
    """
    snapshot = (pretend or from_snapshot) and vcs_ref == "HEAD"
    run_copy(
        str(working_tree_snapshot() if snapshot else TEMPLATE),
        str(destination),
        data=answers or {},
        defaults=True,
        unsafe=True,
        vcs_ref=None if snapshot else vcs_ref,
        quiet=True,
        skip_tasks=not tasks,
        pretend=pretend,
    )
    return destination


@cache
def working_tree_snapshot() -> Path:
    """This template's working tree copied once per process into a temporary folder that is not a git
    repository (copier renders such a folder in place, without cloning it). Removed at exit."""
    folder = Path(tempfile.mkdtemp(prefix="copier-benchmark-snapshot-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    copy_working_tree(folder)
    return folder


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


def tool(project: Path, name: str) -> str:
    """A command of the project's own environment, called directly: what `uv run --quiet <name>` runs,
    without uv's ~0.3 s check that the environment is in sync (the render synced it). For the tests'
    own steps only; what users run (the Makefile, messages) is tested as it is written."""
    return str(project / ".venv" / "bin" / name)


def make(project: Path, *targets: str, check: bool = True, **env: str) -> subprocess.CompletedProcess:
    return run(project, "make", "--no-print-directory", *targets, check=check, **env)


# The longest single tests (45-70 s each on 2 cores): started first, so that no worker is left with
# one of them while the other has nothing more to do.
LONGEST = ("test_long_life.py", "test_migrate_52a9c04.py", "test_update.py::test_update_keeps_user_edits")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that needs a project rendered with its tasks (git, uv sync: ~15 s, then subprocesses) is
    `slow`, whether it asks for `rendered` itself or through a fixture: `make test-fast` skips it.

    The longest tests run first, then the other slow ones, then the fast ones (a stable sort: each
    group keeps pytest's order), so xdist's workers finish together on the short tests."""
    for item in items:
        if "rendered" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)

    def weight(item: pytest.Item) -> int:
        if any(name in item.nodeid for name in LONGEST):
            return 0
        return 1 if item.get_closest_marker("slow") else 2

    items[:] = sorted(items, key=weight)


# What a generated project's commands import, imported once in each shared render (see PYCACHE): the
# harness, the user's modules and what they import (inside functions too), DVC's commands, the
# generated tests (collected) with pytest's plugins.
# A module left out is compiled on first use in each copy instead: slower, never wrong.
WARM_UP = """
import ast, importlib, pkgutil
import pytest
import bench_harness
from bench_harness._core.user import user_module
names = [m.name for m in pkgutil.walk_packages(bench_harness.__path__, "bench_harness.")]
names += ["dvc.cli", "dvc.repo", "dvc.repo.experiments", "pre_commit.main", "xetrack"]
names += [f"dvc.{group}.{command}" for group in ("repo", "commands") for command in
          ("add", "checkout", "commit", "data_sync", "fetch", "get", "ls", "pull", "push", "status")]
for name in names:
    try:
        importlib.import_module(name)
    except BaseException:
        pass
for name in ("params", "data", "predict", "scoring"):
    try:
        tree = ast.parse(open(user_module(name).__file__).read())
    except BaseException:
        continue
    # and what they import inside functions (predict imports scikit-learn when it builds its first model)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            lazy = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            lazy = [node.module]
        else:
            continue
        for lazy_name in lazy:
            try:
                importlib.import_module(lazy_name)
            except BaseException:
                pass
pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider"])
"""


def set_up(project: Path, donors: list[Path]) -> None:
    """What copier's tasks do after a render (hooks/post_copy.py), with the donors' environments.

    The environment is made first (as the hook would): a copy of a donor's with the same uv.lock
    (hard links, its bytecode included: 0.3 s) or else `uv sync` (3 s) and the donors' .pyc files
    linked into it, so the hook's Python steps (prepare-data, dvc-setup: DVC, DuckDB, pandas) start
    warm; then the hook runs as copier runs a task (its command, the project as cwd, STAGE and
    COPIER_OPERATION in the environment): its `uv sync` has nothing left to do. The end state is a
    tasks render's.
    """
    uv = shutil.which("uv", path=project_env()["PATH"]) or "uv"
    subprocess.run([uv, "lock", "--quiet"], cwd=project, env=project_env(), capture_output=True, check=False)
    twin = twin_of(project, donors)
    if twin is not None:
        subprocess.run(["cp", "-al", str(twin / ".venv"), str(project / ".venv")], check=True)
        _repoint(project, old=str(twin), new=str(project))
    subprocess.run([uv, "sync", "--quiet"], cwd=project, env=project_env(), capture_output=True, check=False)
    if twin is None:
        for donor in donors:
            share_bytecode(donor / ".venv", project / ".venv")
    hook = [sys.executable, str(TEMPLATE / "hooks" / "post_copy.py")]
    env = project_env(STAGE="task", COPIER_OPERATION="copy")
    done = subprocess.run(hook, cwd=project.absolute(), env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"hooks/post_copy.py exited {done.returncode} in {project}:\n{done.stdout}{done.stderr}")
    if twin is not None:
        compile_sources(project)  # the twin's warm-up compiled what these packages import
    else:
        warm_bytecode(project, [])


def twin_of(project: Path, donors: list[Path]) -> Path | None:
    """A donor whose environment is this one's (the same uv.lock): the same packages, imported alike."""
    lock = project / "uv.lock"
    if not lock.is_file():
        return None
    text = lock.read_bytes()
    return next((d for d in donors if (d / "uv.lock").is_file() and (d / "uv.lock").read_bytes() == text), None)


def compile_sources(project: Path) -> None:
    """The project's own modules (harness, user package, generated tests) compiled in its tree."""
    python = project / ".venv" / "bin" / "python"
    folders = [str(project / name) for name in ("src", "tests") if (project / name).is_dir()]
    command = [str(python), "-m", "compileall", "-q", *folders]
    subprocess.run(command, env=project_env(), capture_output=True, check=False)


def warm_bytecode(project: Path, donors: list[Path]) -> None:
    """Write the .pyc files of what the project's commands import into its tree (copies share them).

    The renders' environments hard-link the same files from uv's cache: a .pyc another render
    compiled for the same file (the same inode) is linked instead of compiled again.
    """
    python = project / ".venv" / "bin" / "python"
    if not python.exists():
        return
    for donor in donors:
        share_bytecode(donor / ".venv", project / ".venv")
    subprocess.run([str(python), "-c", WARM_UP], cwd=project, env=project_env(), capture_output=True, check=False)


@cache
def plain_defaults() -> dict[str, Any]:
    """copier.yml's questions whose default is a plain scalar, not a Jinja template (nor conditional):
    an answer equal to one of these renders exactly what leaving it out renders."""
    questions = yaml.safe_load((TEMPLATE / "copier.yml").read_text())
    defaults = {}
    for name, question in questions.items():
        if name.startswith("_") or not isinstance(question, dict) or "when" in question:
            continue
        default = question.get("default")
        if isinstance(default, str | int | float | bool) and not (
            isinstance(default, str) and ("{{" in default or "{%" in default)
        ):
            defaults[name] = default
    return defaults


def share_bytecode(donor: Path, venv: Path) -> None:
    """Hard-link donor's .pyc files into venv where venv's source file is the donor's (same inode).

    Python checks a .pyc against its source's mtime and size, which a hard link shares."""
    for packages in donor.glob("lib/python*/site-packages"):
        for cached in packages.rglob("__pycache__/*.pyc"):
            relative = cached.parent.parent.relative_to(packages)
            source_name = cached.name.split(".", 1)[0] + ".py"
            source, target = packages / relative / source_name, venv / packages.relative_to(donor) / relative
            try:
                if os.stat(source).st_ino != os.stat(target / source_name).st_ino:
                    continue
                (target / "__pycache__").mkdir(exist_ok=True)
                os.link(cached, target / "__pycache__" / cached.name)
            except OSError:  # no such source here, another version of it, or already there
                continue


class RenderCache:
    """Renders keyed by their answers, shared by the xdist workers of one session.

    The cache lives in the session's temporary folder (pytest-N, which holds the xdist workers'
    folders), made afresh for each session; a FileLock per key makes the first worker render and
    the others wait for it. A render is `<key>/project` plus its siblings (the local DVC remote).
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def key(answers: dict[str, Any], tasks: bool) -> str:
        """The answers' identity, an answer equal to its question's plain default left out: {"kind":
        "classification"} renders what {} renders, once."""
        defaults = plain_defaults()
        answers = {
            name: value
            for name, value in answers.items()
            if not (name in defaults and type(value) is type(defaults[name]) and value == defaults[name])
        }
        text = json.dumps({"answers": answers, "tasks": tasks}, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def donors(self) -> list[Path]:
        """The finished renders that have an environment: their bytecode can be linked into a new one."""
        projects = [done.parent / "project" for done in self.root.glob("*/.rendered")]
        return [project for project in projects if (project / ".venv").is_dir()]

    def build(self, name: str, make: Callable[[Path], Path]) -> Path:
        """What `make(folder)` returns, made once per session (the first worker makes it, the others
        wait): for renders that `get` cannot key by their answers (another template, another release).
        A `project` it returns is warmed up as `get`'s are. Read it, never change it."""
        folder = self.root / name
        done = folder / ".rendered"
        with FileLock(str(folder) + ".lock"):
            if not done.exists():
                shutil.rmtree(folder, ignore_errors=True)
                folder.mkdir()
                made = make(folder)
                if (made / ".venv").is_dir():
                    warm_bytecode(made, self.donors())
                done.write_text(str(made.relative_to(folder)))
        return folder / done.read_text()

    def get(self, answers: dict[str, Any] | None = None, *, tasks: bool = True) -> Path:
        """The shared render of `answers` (made on first use): read it, never change it."""
        answers = answers or {}
        folder = self.root / self.key(answers, tasks)
        done = folder / ".rendered"
        with FileLock(str(folder) + ".lock"):
            if not done.exists():
                shutil.rmtree(folder, ignore_errors=True)  # a render interrupted half-way
                folder.mkdir()
                render(folder / "project", answers, tasks=False)
                if tasks:
                    set_up(folder / "project", self.donors())
                done.write_text(json.dumps(answers, sort_keys=True, default=str))
        return folder / "project"


def copy_project(project: Path, destination: Path) -> Path:
    """A private copy of a rendered project (and its siblings) that a test may change.

    Everything is copied but the .venv's files, which are hard-linked (uv hard-links them from
    its cache already, and nothing writes into an installed file in place); the few files that
    name the old folder (script shebangs, the editable .pth, direct_url.json, git hooks) are
    rewritten as new files, so the copy runs its own code.
    """
    copy = destination / project.name
    copy.mkdir(parents=True)
    siblings = [entry for entry in project.parent.iterdir() if entry.name not in (project.name, ".rendered")]
    inside = [entry for entry in project.iterdir() if entry.name != ".venv"]
    if siblings:
        subprocess.run(["cp", "-a", *map(str, siblings), str(destination)], check=True)
    subprocess.run(["cp", "-a", *map(str, inside), str(copy)], check=True)
    if (project / ".venv").exists():
        subprocess.run(["cp", "-al", str(project / ".venv"), str(copy / ".venv")], check=True)
    _repoint(copy, old=str(project), new=str(copy))
    return copy


def _repoint(project: Path, *, old: str, new: str) -> None:
    lock = project / ".venv" / ".lock"  # uv flocks it while it syncs: one inode would serialize every copy
    if lock.is_file():
        lock.unlink()
        lock.touch()
    candidates = [*project.glob(".venv/bin/*"), *project.glob(".venv/lib/python*/site-packages/*.pth")]
    candidates += [*project.glob(".venv/lib/python*/site-packages/*.dist-info/direct_url.json")]
    candidates += [*project.glob(".git/hooks/*")]
    for path in candidates:
        if not path.is_file() or path.is_symlink():
            continue
        data = path.read_bytes()
        if old.encode() in data:
            mode = path.stat().st_mode
            path.unlink()  # a new inode: the shared render's hard-linked file stays as it was
            path.write_bytes(data.replace(old.encode(), new.encode()))
            path.chmod(mode)


@pytest.fixture(scope="session")
def render_cache(tmp_path_factory: pytest.TempPathFactory) -> RenderCache:
    """The session's cache: beside the xdist workers' folders (pytest-N/popen-gwK), or in pytest-N
    without xdist (its parent is shared by every session of the user: stale renders)."""
    base = tmp_path_factory.getbasetemp()
    return RenderCache((base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "shared-renders")


def copy_working_tree(destination: Path) -> None:
    """Tracked and untracked-but-not-ignored files of this repository: what a release would hold."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=TEMPLATE, capture_output=True, check=True
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = TEMPLATE / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)


@pytest.fixture(scope="session")
def rendered(
    render_cache: RenderCache, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str, dict[str, Any]], Path]:
    """rendered(name, answers) -> a project (tasks run: git, uv sync, DVC) this worker may change.

    Rendered once per session for each answer set (shared across workers), copied once per worker
    and name: tests of one name share the copy, as they share a module-scoped fixture.
    """
    copies: dict[str, Path] = {}

    def get(name: str, answers: dict[str, Any] | None = None) -> Path:
        if name not in copies:
            copies[name] = copy_project(render_cache.get(answers, tasks=True), tmp_path_factory.mktemp(name))
        return copies[name]

    return get


@pytest.fixture(scope="session")
def rendered_static(render_cache: RenderCache) -> Callable[[dict[str, Any]], Path]:
    """rendered_static(answers) -> the shared files-only render (no tasks): READ it, never change it."""

    def get(answers: dict[str, Any] | None = None) -> Path:
        return render_cache.get(answers, tasks=False)

    return get


@pytest.fixture
def toy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A hand-written toy benchmark (tests/toy.py) the harness runs in-process: no render, no uv sync."""
    import toy as toy_project

    yield from toy_project.activate(toy_project.write_project(tmp_path / "toy"), monkeypatch)
