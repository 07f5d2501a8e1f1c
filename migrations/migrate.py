"""Migrations between template versions: run by copier's `_migrations` during `copier update --trust`.

Why this exists: `copier update` matches things by name. When a release renames an answer, the
saved answer under the old name is ignored and the question silently falls back to its default;
when a release moves a user-owned file (one in `_skip_if_exists`), the new template renders a
fresh copy at the new path and the user's edited file at the old path is deleted as "dropped by
the template". A migration that runs *before* the update (copier reloads the answers file after
before-migrations) renames the answer and moves the file, so the update then sees the user's
answer and the user's file under their new names.

Plain Python (standard library only; it runs with the Python that runs copier) and idempotent:
every operation checks the current state first and does nothing when it is already done, so a
migration that runs twice, or on a project created after the rename, changes nothing.

Usage, from copier.yml (the working directory is the project):

    _migrations:
      - version: "0.3.0"          # runs when updating from < 0.3.0 to >= 0.3.0
        when: "{{ _stage == 'before' }}"
        command: ["{{ _copier_python }}", "{{ _copier_conf.src_path }}/migrations/migrate.py",
                  "rename-answer", "old_name", "new_name"]

    migrate.py rename-answer OLD NEW     the key OLD of .copier-answers.yml becomes NEW
    migrate.py move OLD_PATH NEW_PATH    a file or folder moves (`git mv` when git tracks it)
    migrate.py harness-compat            (after 0.3.0's update) re-exports for the old harness imports
    migrate.py results-layout            (after 0.3.0's update) the whole-database benchmark.db.dvc is retired

Paths may contain `{package_name}` (or any other answer in braces), read from the answers file,
so a migration can move `src/{package_name}/old.py`.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

ANSWERS_FILE = Path(".copier-answers.yml")
# A top-level YAML key as copier's `to_nice_yaml` writes it: `name:` at column 0.
TOP_LEVEL_KEY = re.compile(r"^(?P<key>[A-Za-z_][A-Za-z0-9_]*):(?=\s|$)")


def say(message: str) -> None:
    """Print with the same prefix as the copy hook, so users can tell our lines from copier's."""
    stage = os.environ.get("STAGE", "manual")
    print(f"[copier-benchmark migration, {stage}] {message}", flush=True)


def top_level_keys(lines: Sequence[str]) -> dict[str, int]:
    """Index of every top-level key line of a YAML mapping file."""
    return {m["key"]: i for i, line in enumerate(lines) if (m := TOP_LEVEL_KEY.match(line))}


def block_end(lines: Sequence[str], start: int) -> int:
    """End (exclusive) of the YAML block that starts at `start`: up to the next top-level key."""
    end = start + 1
    while end < len(lines) and not TOP_LEVEL_KEY.match(lines[end]) and not lines[end].startswith("#"):
        end += 1
    return end


def rename_answer(old: str, new: str, answers_file: Path = ANSWERS_FILE) -> bool:
    """Rename a saved answer; return whether the file changed.

    Text-based on purpose: it keeps the file as copier wrote it (comments, order, quoting) and
    needs no YAML library. When both keys exist (the rename was already done, or the user answered
    the new question), the new one wins and the old one is dropped.
    """
    if not answers_file.exists():
        say(f"{answers_file} not found: nothing to rename")
        return False
    lines = answers_file.read_text().splitlines(keepends=True)
    keys = top_level_keys(lines)
    if old not in keys:
        say(f"answer {old!r}: not in {answers_file} (already renamed, or never answered)")
        return False
    start = keys[old]
    if new in keys:
        del lines[start : block_end(lines, start)]
        say(f"answer {old!r}: dropped, {new!r} is already answered")
    else:
        lines[start] = new + lines[start][len(old) :]
        say(f"answer {old!r} renamed to {new!r}")
    answers_file.write_text("".join(lines))
    return True


def answers(answers_file: Path = ANSWERS_FILE) -> dict[str, str]:
    """The scalar answers (`key: value` on one line), to expand `{package_name}` in paths."""
    if not answers_file.exists():
        return {}
    found: dict[str, str] = {}
    for line in answers_file.read_text().splitlines():
        if (m := TOP_LEVEL_KEY.match(line)) and (value := line[m.end() :].strip()):
            found[m["key"]] = value.strip("'\"")
    return found


def expand(path: str, answers_file: Path = ANSWERS_FILE) -> Path:
    """`src/{package_name}/x.py` with the project's answers filled in."""
    try:
        return Path(path.format(**answers(answers_file)))
    except KeyError as missing:
        raise SystemExit(f"migrate.py: {path!r} needs the answer {missing}, not in {answers_file}") from None


def git_tracks(path: Path) -> bool:
    """Whether git tracks `path` (a file, or any file in a folder)."""
    if shutil.which("git") is None or not Path(".git").exists():
        return False
    done = subprocess.run(["git", "ls-files", "--", str(path)], capture_output=True, text=True, check=False)
    return done.returncode == 0 and bool(done.stdout.strip())


def move(old: Path, new: Path) -> bool:
    """Move a file or folder; return whether anything moved.

    `git mv` when git tracks it: copier computes the user's changes from the git index, so a
    move that only touched the disk would look like "old path deleted" to the update.
    """
    if not old.exists():
        say(f"{old}: not found (already moved, or deleted by you): nothing to move")
        return False
    if new.exists():
        say(f"{new} exists already: {old} left in place for you to merge by hand")
        return False
    new.parent.mkdir(parents=True, exist_ok=True)
    if git_tracks(old):
        subprocess.run(["git", "mv", "--", str(old), str(new)], check=True)
    else:
        old.rename(new)
    say(f"moved {old} to {new}")
    return True


# --- 0.3.0: the harness moved from src/<package>/harness/ to the package bench_harness ---------------

# Where each module of the old harness package went. A user file that imports one of them gets a
# re-export module at the old path (`harness_compat`); public names come from `bench_harness`.
HARNESS_MOVED_TO = {
    "__init__": "bench_harness",
    "config": "bench_harness._core.config",
    "datafiles": "bench_harness._core.datafiles",
    "env": "bench_harness._core.env",
    "errors": "bench_harness._core.errors",
    "segments": "bench_harness._core.segments",
    "duck": "bench_harness._storage.duck",
    "keys": "bench_harness._storage.keys",
    "store": "bench_harness._storage.store",
    "executors": "bench_harness._run.executors",
    "monitor": "bench_harness._run.monitor",
    "progress": "bench_harness._run.progress",
    "runner": "bench_harness._run.runner",
    "analysis": "bench_harness._results.analysis",
    "metrics": "bench_harness._results.metrics",
    "rescore": "bench_harness._results.rescore",
    "stats": "bench_harness._results.stats",
    "inspection": "bench_harness._checks.inspection",
    "schema": "bench_harness._checks.schema",
    "validate": "bench_harness._checks.validate",
    "versioning": "bench_harness._versioning.versioning",
}
COMPAT_MARKER = "Compatibility re-exports written by copier-benchmark's 0.3.0 migration"
COMPAT_MODULE = '''"""{marker}.

Moved: `{old}`
    to `{new}`.

Your files written before template 0.3.0 import `.harness.{name}` (src/<package>/harness/ was the
harness); this module keeps them working, unchanged, so their code version (the cache identity)
stays the same and no cached row is recomputed. It is yours now: the template never updates it.
New code imports `from bench_harness import ...` (the harness's only public module); once none of
your files imports `.harness.` any more, delete this folder (editing predict.py recomputes its
rows unless it sets PREDICT_VERSION).
"""

from __future__ import annotations

import importlib
from typing import Any

MOVED_TO = "{new}"


def __getattr__(name: str) -> Any:
    """A public name from bench_harness (stable), anything else from the module it moved to."""
    public = importlib.import_module("bench_harness")
    if name in public.__all__:
        return getattr(public, name)
    return getattr(importlib.import_module(MOVED_TO), name)
'''
# `from .harness.errors import`, `from .harness import keys`, `pkg.harness.errors`, `f"{PACKAGE}.harness.errors"`
HARNESS_REFERENCE = re.compile(r"\.harness(?:\.(?P<module>[A-Za-z_]\w*)|\s+import\s+\(?\s*(?P<names>[A-Za-z_][\w, ]*))")


def harness_references(files: Sequence[Path]) -> set[str]:
    """The old harness modules the files import (or name for importlib), "__init__" for the package itself."""
    found: set[str] = set()
    for path in files:
        for match in HARNESS_REFERENCE.finditer(path.read_text(encoding="utf-8", errors="replace")):
            if match["module"]:
                found.add(match["module"])
            else:
                names = {name.strip() for name in match["names"].split(",")}
                found |= {name for name in names if name in HARNESS_MOVED_TO} or {"__init__"}
    return {name for name in found if name in HARNESS_MOVED_TO} | ({"__init__"} if found else set())


def user_python_files(package: Path) -> list[Path]:
    """The project's own Python files: its package (not the old harness folder) and tests."""
    candidates = [*package.glob("*.py"), *Path("tests").glob("**/*.py")]
    return sorted(path for path in candidates if path.is_file())


def harness_compat(package_name: str | None = None) -> list[Path]:
    """Write a re-export module at src/<package>/harness/<m>.py for each old harness module still imported.

    Run after the 0.3.0 update, which deleted the old template-owned harness. Idempotent: a module
    already written is left as it is, and a file there that is not one of ours is never overwritten.
    """
    package_name = package_name or answers().get("package_name")
    if not package_name:
        raise SystemExit("migrate.py harness-compat: no package_name in .copier-answers.yml")
    package = Path("src") / package_name
    modules = harness_references(user_python_files(package))
    if not modules:
        say("no file imports the old harness package: no compatibility modules needed")
        return []
    folder, written = package / "harness", []
    folder.mkdir(parents=True, exist_ok=True)
    for name in sorted(modules):
        target = folder / f"{name}.py"
        old = f"{package_name}.harness" + ("" if name == "__init__" else f".{name}")
        text = COMPAT_MODULE.format(marker=COMPAT_MARKER, old=old, new=HARNESS_MOVED_TO[name], name=name)
        if target.exists():
            if COMPAT_MARKER not in target.read_text(encoding="utf-8", errors="replace"):
                say(f"{target} exists and is not a compatibility module: left as it is")
            continue
        target.write_text(text, encoding="utf-8")
        written.append(target)
    if written:
        say(
            f"the harness is now bench_harness; {folder}/ re-exports what your files import from it: "
            + ", ".join(path.stem for path in written)
        )
    return written


# --- 0.3.0: results versioned per experiment (results/<version>.db), not as one growing database ---------
def database_path(config: Path = Path("benchmark.toml")) -> str:
    """[database] path of benchmark.toml (default benchmark.db); a regex where tomllib is missing (< 3.11)."""
    try:
        text = config.read_text(encoding="utf-8")
    except OSError:
        return "benchmark.db"
    try:
        import tomllib

        return str(tomllib.loads(text).get("database", {}).get("path", "benchmark.db"))
    except ImportError:
        section = text.partition("[database]")[2].split("\n[", 1)[0]
        found = re.search(r'^path\s*=\s*["\']([^"\']+)', section, re.MULTILINE)
        return found[1] if found else "benchmark.db"
    except ValueError:
        return "benchmark.db"


def results_layout() -> bool:
    """Stop versioning the whole working database: `git rm --cached <db>.dvc`; return whether it did.

    Before 0.3.0 every experiment `dvc add`-ed the whole, growing benchmark.db (DVC stored every row
    again each time). From 0.3.0 each experiment's rows go to results/<version>.db and benchmark.db is
    only the working database (kept here as it is: the cache and every query use it). The next
    `make experiment` exports the earlier tagged versions it holds to results/ once, and the old tags
    keep their benchmark.db.dvc: `make reproduce TAG=<old tag>` restores them as before. Idempotent.
    """
    dvc_file = Path(database_path() + ".dvc")
    if not git_tracks(dvc_file):
        say(f"{dvc_file}: not tracked (a project without DVC, or already migrated): nothing to do")
        return False
    subprocess.run(["git", "rm", "--cached", "--quiet", "--", str(dvc_file)], check=True)
    dvc_file.unlink(missing_ok=True)
    say(
        f"results are now versioned per experiment in results/<version>.db; {dvc_file} is retired "
        f"({dvc_file.with_suffix('')} stays, your working database). Commit this update; the next "
        "`make experiment` writes the earlier experiments' files too. Old tags reproduce as before."
    )
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="operation", required=True)
    rename = sub.add_parser("rename-answer", help="rename a saved answer in .copier-answers.yml")
    rename.add_argument("old")
    rename.add_argument("new")
    moving = sub.add_parser("move", help="move a file or folder (paths may use {package_name})")
    moving.add_argument("old")
    moving.add_argument("new")
    sub.add_parser("harness-compat", help="0.3.0: re-export modules for files importing the old src/<pkg>/harness/")
    sub.add_parser("results-layout", help="0.3.0: retire benchmark.db.dvc (results now per experiment in results/)")
    args = parser.parse_args(argv)
    if args.operation == "rename-answer":
        rename_answer(args.old, args.new)
    elif args.operation == "harness-compat":
        harness_compat()
    elif args.operation == "results-layout":
        results_layout()
    else:
        move(expand(args.old), expand(args.new))
    return 0


if __name__ == "__main__":
    sys.exit(main())
