"""Set up a freshly rendered benchmark: run by copier's `_tasks` after `copier copy --trust`.

Runs in the new project's folder and never prompts. Each step is idempotent and skips itself
when it has nothing to do, so running it twice is harmless:

1. git: `git init` (and a local identity when none is configured);
2. uv sync: the environment in .venv;
3. data: convert the bundled sample to the answered data_format/data_path;
4. DVC (standard/maximum versioning): `dvc init`, analytics off, the default remote, `data/`
   tracked as data.dvc (before the first commit, so git never holds the data);
5. the first commit (with .copier-answers.yml, which `copier update` needs);
6. `pre-commit install` (local hooks only: they work offline).

A missing tool (uv, say) or a failed step is reported with the command to run later, not a failed
copy (copier would delete the rendered project): the last lines then say "set-up incomplete", list
what failed and how to finish, instead of "ready".
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path.cwd()
SAMPLE = Path("data/sample.jsonl")


# Steps that did not complete: (what failed, the command that finishes it). Reported last.
FAILURES: list[tuple[str, str]] = []


def say(message: str) -> None:
    print(f"[copier-benchmark] {message}", flush=True)


def failed(what: str, fix: str) -> None:
    """Remember a step that did not complete; main() reports them all instead of "ready"."""
    FAILURES.append((what, fix))
    say(f"{what} (then: {fix})")


def run(*command: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "GIT_TERMINAL_PROMPT": "0"}
    done = subprocess.run(command, cwd=ROOT, text=True, capture_output=True, env=env, stdin=subprocess.DEVNULL)
    if check and done.returncode != 0:
        raise SystemExit(f"[copier-benchmark] `{' '.join(command)}` failed:\n{done.stdout}{done.stderr}")
    return done


def uv_command() -> list[str] | None:
    """`uv` from PATH, else the uv module of the Python running copier."""
    if found := shutil.which("uv"):
        return [found]
    try:
        import uv  # noqa: F401

        return [sys.executable, "-m", "uv"]
    except ImportError:
        return None


def convert_sample(config: dict) -> None:
    """The sample ships as JSON lines; write it where and how the answers asked."""
    target = Path(config["data"]["path"])
    if target != SAMPLE and target.exists() and is_bundled_sample(config):
        # `copier recopy` re-renders the seed sample (data/** is only skipped when it exists):
        # the converted data is there already, and an identical copy of the seed is no loss.
        SAMPLE.unlink()
        say(f"{SAMPLE} removed: re-rendered by a recopy, {target} holds the data")
        return
    if target == SAMPLE or not SAMPLE.exists() or target.exists():
        return
    python = ROOT / ".venv" / "bin" / "python"
    if python.exists():
        run(str(python), "-m", "bench_harness", "prepare-data")
        return
    if target.suffix == ".parquet":
        failed("the sample was not converted to parquet (DuckDB writes it)", "`make install` (it converts it)")
        return
    sys.path.insert(0, str(ROOT / "src"))
    try:
        from bench_harness._core.datafiles import convert  # stdlib only for jsonl and csv

        convert(SAMPLE, target)
    finally:
        sys.path.pop(0)
    SAMPLE.unlink()
    say(f"sample data written to {target}")


def is_bundled_sample(config: dict) -> bool:
    """Whether data/sample.jsonl is the kind's bundled sample (never the user's data).

    Byte for byte but for trailing newlines: the render adds one to the included file.
    """
    bundled = Path(__file__).resolve().parents[1] / "kinds" / config["project"]["kind"] / "sample.jsonl"
    if not (SAMPLE.is_file() and bundled.is_file()):
        return False
    return SAMPLE.read_bytes().rstrip(b"\n") == bundled.read_bytes().rstrip(b"\n")


def has_commits() -> bool:
    """A repository with a HEAD: this is `copier recopy` (or a copy into an existing project)."""
    if not shutil.which("git") or not (ROOT / ".git").exists():
        return False
    return run("git", "rev-parse", "--verify", "--quiet", "HEAD", check=False).returncode == 0


def ensure_git() -> None:
    if not shutil.which("git"):
        say("git not found: run `git init && git add -A && git commit -m init` yourself")
        return
    if not (ROOT / ".git").exists():
        run("git", "init", "--quiet", "--initial-branch=main")
    if not run("git", "config", "user.email", check=False).stdout.strip():
        run("git", "config", "user.email", "benchmark@localhost")
        run("git", "config", "user.name", "benchmark")


def commit(message: str) -> None:
    run("git", "add", "-A")
    if run("git", "diff", "--cached", "--quiet", check=False).returncode != 0:
        run("git", "commit", "--quiet", "--no-verify", "-m", message)


def setup_dvc(config: dict) -> None:
    """DVC for data (and, after each experiment, the results database): the harness's `dvc-setup`.

    One process runs the four DVC steps (DVC is imported once, not started four times).
    """
    if config["versioning"]["level"] == "minimal":
        return
    python = ROOT / ".venv" / "bin" / "python"
    if not (ROOT / ".venv" / "bin" / "dvc").exists():
        failed("DVC not set up: dvc is not installed", "`make install`, then `make dvc-setup`")
        return
    run(str(python), "-m", "bench_harness", "dvc-setup")


def sync_environment() -> None:
    uv = uv_command()
    if uv is None:
        failed("the environment was not created: uv not found", "`pip install uv`, then `make install`")
        return
    done = run(*uv, "sync", "--quiet", check=False)
    if done.returncode != 0:
        print(done.stderr[-2000:], file=sys.stderr, flush=True)
        failed("`uv sync` failed (its error is above)", "fix the cause, then `make install`")


def install_pre_commit() -> None:
    pre_commit = ROOT / ".venv" / "bin" / "pre-commit"
    if pre_commit.exists() and (ROOT / ".pre-commit-config.yaml").exists() and (ROOT / ".git").exists():
        run(str(pre_commit), "install", "--install-hooks", check=False)


def main() -> int:
    config = tomllib.loads((ROOT / "benchmark.toml").read_text())
    ensure_git()
    first_copy = not has_commits()
    sync_environment()
    convert_sample(config)
    try:
        setup_dvc(config)
    except SystemExit as error:  # run() failed: report it with the others, keep the rendered project
        print(error, file=sys.stderr, flush=True)
        failed("DVC set-up failed (its error is above)", "fix the cause, then `make dvc-setup`")
    if first_copy:
        commit("chore: benchmark rendered by copier-benchmark")
    else:  # recopy: it overwrote template-owned files, the user reviews that before committing
        say("the project had commits: nothing committed; review `git status` / `git diff`, then commit")
    install_pre_commit()
    if FAILURES:
        say("SET-UP INCOMPLETE: the files are rendered, but these steps failed:")
        for what, fix in FAILURES:
            say(f"  - {what}; to finish: {fix}")
        return 0  # a non-zero exit would make copier delete the rendered project
    say("ready: `make test`, then `make experiment`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
